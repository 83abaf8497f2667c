"""SQL for the audit log."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from cloudlet.audit.models import AuditEntry
from cloudlet.audit.schemas import AuditQuery
from cloudlet.kit.db import insert_rows


def insert_many(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Append entries with one INSERT (no ORM bookkeeping: this runs after every request)."""
    insert_rows(session, AuditEntry, rows)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _conditions(query: AuditQuery) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if query.actor_user_id is not None:
        conditions.append(AuditEntry.actor_user_id == query.actor_user_id)
    if query.token_id is not None:
        conditions.append(AuditEntry.token_id == query.token_id)
    if query.method is not None:
        conditions.append(AuditEntry.method == query.method)
    if query.path:
        conditions.append(AuditEntry.path.like(_escape_like(query.path) + "%", escape="\\"))
    if query.status is not None:
        conditions.append(AuditEntry.status == query.status)
    if query.since is not None:
        conditions.append(AuditEntry.created_at >= query.since)
    if query.until is not None:
        conditions.append(AuditEntry.created_at < query.until)
    return conditions


def count(session: Session, query: AuditQuery, *, before_id: int | None = None) -> int:
    """How many entries match the filters (only those with ids below before_id, when given)."""
    statement = select(func.count(AuditEntry.id)).where(*_conditions(query))
    if before_id is not None:
        statement = statement.where(AuditEntry.id < before_id)
    return int(session.scalar(statement) or 0)


def newest_id(session: Session) -> int:
    """The id of the newest entry, 0 when the log is empty."""
    return int(session.scalar(select(func.max(AuditEntry.id))) or 0)


def page(session: Session, query: AuditQuery, *, limit: int, offset: int) -> Sequence[AuditEntry]:
    """Matching entries, newest first, one page of them."""
    statement = select(AuditEntry).where(*_conditions(query)).order_by(AuditEntry.id.desc()).limit(limit).offset(offset)
    return session.scalars(statement).all()


def batch_before(session: Session, query: AuditQuery, *, before_id: int | None, size: int) -> Sequence[AuditEntry]:
    """Up to size matching entries with ids below before_id (all ids when None), newest first."""
    statement = select(AuditEntry).where(*_conditions(query))
    if before_id is not None:
        statement = statement.where(AuditEntry.id < before_id)
    return session.scalars(statement.order_by(AuditEntry.id.desc()).limit(size)).all()
