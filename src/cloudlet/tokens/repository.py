"""SQL for API tokens and their usage log."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from cloudlet.tokens.models import ApiToken, TokenUsage

MAX_ID = 2**31 - 1


def insert(session: Session, token: ApiToken) -> ApiToken:
    """Add a token and give it its id."""
    session.add(token)
    session.flush()
    return token


def get(session: Session, token_id: int) -> ApiToken | None:
    """A token by id, whoever owns it."""
    return session.get(ApiToken, token_id) if 0 < token_id <= MAX_ID else None


def get_owned(session: Session, user_id: int, token_id: int) -> ApiToken | None:
    """A token by id if it belongs to the user."""
    if not 0 < token_id <= MAX_ID:  # PostgreSQL refuses to compare an INTEGER with a bigger number
        return None
    token = session.get(ApiToken, token_id)
    return token if token is not None and token.user_id == user_id else None


def find_by_hash(session: Session, secret_hash: str) -> ApiToken | None:
    """The token whose secret has this digest."""
    return session.scalars(select(ApiToken).where(ApiToken.secret_hash == secret_hash)).first()


def list_for_user(session: Session, user_id: int) -> list[ApiToken]:
    """A user's tokens, oldest first."""
    return list(session.scalars(select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id)))


def delete(session: Session, token: ApiToken) -> None:
    """Remove a token (its usage log goes with it)."""
    session.delete(token)
    session.flush()


def record_use(session: Session, token_id: int, *, at: datetime, ip: str | None, usage: TokenUsage) -> None:
    """Count one request on the token and append it to the usage log, without reading the row first.

    A token revoked by the very request being recorded is left alone.
    """
    result = session.execute(
        update(ApiToken)
        .where(ApiToken.id == token_id)
        .values(request_count=ApiToken.request_count + 1, last_used_at=at, last_used_ip=ip)
    )
    if getattr(result, "rowcount", 0):
        session.add(usage)


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
