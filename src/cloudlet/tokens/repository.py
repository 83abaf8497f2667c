"""SQL for API tokens and their usage log."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from cloudlet.kit.db import insert_rows
from cloudlet.kit.ids import in_range
from cloudlet.tokens.models import ApiToken, TokenUsage


def insert(session: Session, token: ApiToken) -> ApiToken:
    """Add a token and give it its id."""
    session.add(token)
    session.flush()
    return token


def get(session: Session, token_id: int) -> ApiToken | None:
    """A token by id, whoever owns it."""
    return session.get(ApiToken, token_id) if in_range(token_id) else None


def get_owned(session: Session, user_id: int, token_id: int) -> ApiToken | None:
    """A token by id if it belongs to the user."""
    if not in_range(token_id):  # PostgreSQL refuses to compare an INTEGER with a bigger number
        return None
    token = session.get(ApiToken, token_id)
    return token if token is not None and token.user_id == user_id else None


def find_by_hash(session: Session, secret_hash: str) -> ApiToken | None:
    """The token whose secret has this digest."""
    return session.scalars(select(ApiToken).where(ApiToken.secret_hash == secret_hash)).first()


def list_for_user(session: Session, user_id: int) -> list[ApiToken]:
    """A user's tokens, oldest first."""
    return list(session.scalars(select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id)))


def count_for_user(session: Session, user_id: int) -> int:
    """How many tokens the user holds."""
    return int(session.scalar(select(func.count()).select_from(ApiToken).where(ApiToken.user_id == user_id)) or 0)


def delete(session: Session, token: ApiToken) -> None:
    """Remove a token (its usage log goes with it)."""
    session.delete(token)
    session.flush()


def count_uses(session: Session, token_id: int, n: int, *, at: datetime, ip: str | None) -> bool:
    """Add n requests to the token's count and note the last use; False when the token is gone."""
    result = session.execute(
        update(ApiToken)
        .where(ApiToken.id == token_id)
        .values(request_count=ApiToken.request_count + n, last_used_at=at, last_used_ip=ip)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def insert_usage(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Append usage-log lines with one INSERT."""
    insert_rows(session, TokenUsage, rows)


def usage_page(session: Session, token_id: int, *, limit: int, offset: int) -> tuple[list[TokenUsage], int]:
    """One page of a token's usage log, newest first, and the total count."""
    total = session.scalar(select(func.count()).select_from(TokenUsage).where(TokenUsage.token_id == token_id))
    rows = session.scalars(
        select(TokenUsage)
        .where(TokenUsage.token_id == token_id)
        .order_by(TokenUsage.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(rows), int(total or 0)
