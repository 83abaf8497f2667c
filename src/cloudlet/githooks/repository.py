"""SQL for webhook tokens."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloudlet.githooks.models import WebhookToken
from cloudlet.kit.ids import in_range


def insert(session: Session, token: WebhookToken) -> WebhookToken:
    """Add a token and give it its id."""
    session.add(token)
    session.flush()
    return token


def get(session: Session, token_id: int) -> WebhookToken | None:
    """A token by id, whichever project holds it."""
    return session.get(WebhookToken, token_id) if in_range(token_id) else None


def find_by_hash(session: Session, secret_hash: str) -> WebhookToken | None:
    """The token whose secret has this digest."""
    return session.scalars(select(WebhookToken).where(WebhookToken.secret_hash == secret_hash)).first()


def list_for_projects(session: Session, project_ids: Iterable[int]) -> list[WebhookToken]:
    """The tokens of some projects, oldest first."""
    return list(session.scalars(select(WebhookToken).where(WebhookToken.project_id.in_(list(project_ids)))
                                .order_by(WebhookToken.id)))


def count_for_project(session: Session, project_id: int) -> int:
    """How many tokens a project holds."""
    return int(session.scalar(select(func.count()).select_from(WebhookToken)
                              .where(WebhookToken.project_id == project_id)) or 0)


def delete(session: Session, token: WebhookToken) -> None:
    """Remove a token."""
    session.delete(token)
    session.flush()
