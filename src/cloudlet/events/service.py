"""Recording signals inside the caller's transaction, so an event exists exactly when its cause does."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlalchemy.orm import Session

from cloudlet.events import repository
from cloudlet.events.models import Event
from cloudlet.events.schemas import EventKind, EventRead


def record(session: Session, kind: EventKind | str, *, project_id: int | None, payload: BaseModel,
           subject: str | None = None) -> EventRead:
    """Record an event; it commits or rolls back with the change that caused it."""
    event = repository.insert(session, Event(project_id=project_id, kind=str(kind), subject=subject,
                                             payload=payload.model_dump(mode="json")))
    return EventRead.model_validate(event)


def recent(session: Session, *, project_id: int | None = None, kind: EventKind | str | None = None,
           limit: int = 50) -> list[EventRead]:
    """The newest events, newest first, of one project and kind when given."""
    rows = repository.newest(session, project_id, str(kind) if kind is not None else None, limit)
    return [EventRead.model_validate(e) for e in rows]


def recorded_since(session: Session, kind: EventKind | str, subject: str, since: datetime) -> bool:
    """Whether the same signal about the same subject was recorded since a moment (to say it once)."""
    return repository.exists_since(session, str(kind), subject, since)


def after(session: Session, event_id: int, *, limit: int = 500) -> list[EventRead]:
    """The events with an id above event_id, in id order (for readers that keep a cursor)."""
    return [EventRead.model_validate(e) for e in repository.after(session, event_id, limit)]


def last_id(session: Session) -> int:
    """The newest event's id, 0 before any (where a new reader starts)."""
    return repository.last_id(session)
