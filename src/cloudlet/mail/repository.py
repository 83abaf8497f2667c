"""SQL for the outbox."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloudlet.mail.models import MailStatus, OutboxMessage


def insert(session: Session, message: OutboxMessage) -> OutboxMessage:
    """Add a message."""
    session.add(message)
    session.flush()
    return message


def newest(session: Session, limit: int) -> list[OutboxMessage]:
    """The newest messages first."""
    return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(limit)))


def claim_queued(session: Session, limit: int, max_attempts: int) -> list[OutboxMessage]:
    """Queued messages to send, locked against other senders where the database can (PostgreSQL)."""
    query = (select(OutboxMessage)
             .where(OutboxMessage.status == MailStatus.QUEUED, OutboxMessage.attempts < max_attempts)
             .order_by(OutboxMessage.id).limit(limit))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list(session.scalars(query))
