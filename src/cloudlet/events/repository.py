"""SQL for events."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloudlet.events.models import Event


def insert(session: Session, event: Event) -> Event:
    """Add an event and give it its id."""
    session.add(event)
    session.flush()
    return event


def newest(session: Session, project_id: int | None, kind: str | None, limit: int) -> list[Event]:
    """The newest events, of one project and kind when given."""
    query = select(Event).order_by(Event.id.desc()).limit(limit)
    if project_id is not None:
        query = query.where(Event.project_id == project_id)
    if kind is not None:
        query = query.where(Event.kind == kind)
    return list(session.scalars(query))


def exists_since(session: Session, kind: str, subject: str, since: datetime) -> bool:
    """Whether an event of this kind about this subject was recorded since a moment."""
    return session.scalar(select(Event.id).where(Event.kind == kind, Event.subject == subject,
                                                 Event.created_at >= since).limit(1)) is not None


def after(session: Session, event_id: int, limit: int) -> list[Event]:
    """The events with an id above event_id, in id order."""
    return list(session.scalars(select(Event).where(Event.id > event_id).order_by(Event.id).limit(limit)))


def last_id(session: Session) -> int:
    """The newest event's id (0 before any)."""
    return session.scalar(select(func.max(Event.id))) or 0
