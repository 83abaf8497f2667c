"""SQL of the alerts domain: rules and alerts. Nothing here reads another domain's tables."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from cloudlet.alerts.models import Alert, AlertRule, AlertStatus, TargetType


def add(session: Session, row: AlertRule | Alert) -> None:
    """Add a row and flush it (it gets its id)."""
    session.add(row)
    session.flush()


def delete(session: Session, row: AlertRule) -> None:
    """Remove a rule (its alerts stay, no longer linked to it)."""
    session.delete(row)
    session.flush()


def flush(session: Session) -> None:
    """Write pending changes."""
    session.flush()


# --- rules ----------------------------------------------------------------------------------------


def rule(session: Session, rule_uuid: str, *, lock: bool = False) -> AlertRule | None:
    """A rule by its uuid (locked for update when asked)."""
    query = select(AlertRule).where(AlertRule.uuid == rule_uuid)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return session.scalars(query).first()


def rules(session: Session, project_ids: Iterable[int], *, nodes: bool) -> list[AlertRule]:
    """The rules of these projects, oldest first (node-targeted ones only when asked)."""
    query = select(AlertRule).where(AlertRule.project_id.in_(list(project_ids)))
    if not nodes:
        query = query.where(AlertRule.target_type != TargetType.NODE)
    return list(session.scalars(query.order_by(AlertRule.id)))


def enabled_rules(session: Session, *, lock: bool = False) -> list[AlertRule]:
    """Every enabled rule of every project, by id: what an evaluation round judges."""
    query = select(AlertRule).where(AlertRule.enabled.is_(True)).order_by(AlertRule.id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return list(session.scalars(query))


# --- alerts ---------------------------------------------------------------------------------------


def _with_rule() -> Select[*tuple[Any, ...]]:
    return select(Alert, AlertRule.uuid).outerjoin(AlertRule, AlertRule.id == Alert.rule_id)


def open_alerts(session: Session, rule_ids: Iterable[int]) -> dict[int, Alert]:
    """The open alert of each of these rules that has one."""
    ids = list(rule_ids)
    if not ids:
        return {}
    query = select(Alert).where(Alert.open_rule_id.in_(ids)).execution_options(populate_existing=True)
    return {row.rule_id: row for row in session.scalars(query) if row.rule_id is not None}


def open_alert(session: Session, rule_id: int) -> Alert | None:
    """A rule's open alert, if it has one."""
    return session.scalars(select(Alert).where(Alert.open_rule_id == rule_id)).first()


def alert(session: Session, alert_uuid: str) -> tuple[Alert, str | None] | None:
    """An alert by its uuid, with its rule's uuid (None once the rule is gone)."""
    found = session.execute(_with_rule().where(Alert.uuid == alert_uuid)).first()
    return (found[0], found[1]) if found is not None else None


def _filtered(query: Select[*tuple[Any, ...]], project_ids: list[int], nodes: bool, status: AlertStatus | None,
              acknowledged: bool | None) -> Select[*tuple[Any, ...]]:
    query = query.where(Alert.project_id.in_(project_ids))
    if not nodes:
        query = query.where(Alert.target_type != TargetType.NODE)
    if status is not None:
        query = query.where(Alert.status == status)
    if acknowledged is not None:
        query = query.where(Alert.acknowledged_at.is_not(None) if acknowledged else Alert.acknowledged_at.is_(None))
    return query


def alerts(session: Session, project_ids: Iterable[int], *, nodes: bool, status: AlertStatus | None,
           acknowledged: bool | None, limit: int | None, offset: int) -> tuple[list[tuple[Alert, str | None]], int]:
    """A page of these projects' alerts, newest first, with their rules' uuids; and how many match in all."""
    ids = list(project_ids)
    query = _filtered(_with_rule(), ids, nodes, status, acknowledged).order_by(Alert.id.desc()).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    rows = [(row[0], row[1]) for row in session.execute(query)]
    counted = _filtered(select(func.count(Alert.id)), ids, nodes, status, acknowledged)
    return rows, int(session.scalar(counted) or 0)


def unread(session: Session, project_ids: Iterable[int], *, nodes: bool) -> int:
    """How many of these projects' in-app alerts are not acknowledged."""
    query = _filtered(select(func.count(Alert.id)), list(project_ids), nodes, None, False)
    return int(session.scalar(query.where(Alert.in_app.is_(True))) or 0)
