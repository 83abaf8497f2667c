"""SQL for integrations, their deliveries and the events cursor."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloudlet.integrations.models import DeliveryStatus, Integration, IntegrationCursor, IntegrationDelivery
from cloudlet.kit import clock

CURSOR = "events"


def insert(session: Session, integration: Integration) -> Integration:
    """Add an integration and give it its id."""
    session.add(integration)
    session.flush()
    return integration


def get(session: Session, integration_id: int) -> Integration | None:
    """An integration by id, whichever project it belongs to (the service checks that)."""
    return session.get(Integration, integration_id)


def of_projects(session: Session, project_ids: Collection[int]) -> list[Integration]:
    """The integrations of these projects, oldest first."""
    if not project_ids:
        return []
    query = select(Integration).where(Integration.project_id.in_(project_ids)).order_by(Integration.id)
    return list(session.scalars(query))


def count_in(session: Session, project_id: int) -> int:
    """How many integrations a project has."""
    return session.scalar(select(func.count(Integration.id)).where(Integration.project_id == project_id)) or 0


def enabled_in(session: Session, project_ids: Collection[int]) -> list[Integration]:
    """The enabled integrations of these projects, oldest first."""
    if not project_ids:
        return []
    query = (select(Integration).where(Integration.project_id.in_(project_ids), Integration.enabled.is_(True))
             .order_by(Integration.id))
    return list(session.scalars(query))


def oldest_start(session: Session) -> int | None:
    """The lowest event id any integration starts after (None without integrations)."""
    return session.scalar(select(func.min(Integration.since_event_id)))


def delete(session: Session, integration: Integration) -> None:
    """Remove an integration; its delivery log goes with it."""
    session.delete(integration)
    session.flush()


def insert_delivery(session: Session, delivery: IntegrationDelivery) -> IntegrationDelivery:
    """Add a delivery and give it its id."""
    session.add(delivery)
    session.flush()
    return delivery


def get_delivery(session: Session, delivery_id: int) -> IntegrationDelivery | None:
    """A delivery by id."""
    return session.get(IntegrationDelivery, delivery_id)


def deliveries_of(session: Session, integration_id: int, limit: int) -> list[IntegrationDelivery]:
    """An integration's newest deliveries, newest first."""
    query = (select(IntegrationDelivery).where(IntegrationDelivery.integration_id == integration_id)
             .order_by(IntegrationDelivery.id.desc()).limit(limit))
    return list(session.scalars(query))


def count_deliveries(session: Session, integration_id: int) -> int:
    """How many deliveries an integration's log holds."""
    return session.scalar(select(func.count(IntegrationDelivery.id))
                          .where(IntegrationDelivery.integration_id == integration_id)) or 0


def pending(session: Session, limit: int) -> list[tuple[int, str]]:
    """(id, workflow id) of the deliveries still pending, oldest first."""
    query = (select(IntegrationDelivery.id, IntegrationDelivery.workflow_id)
             .where(IntegrationDelivery.status == DeliveryStatus.PENDING)
             .order_by(IntegrationDelivery.id).limit(limit))
    return [(row.id, row.workflow_id) for row in session.execute(query)]


def cursor(session: Session) -> int | None:
    """The newest event id already fanned out, or None before the first reading."""
    found = session.get(IntegrationCursor, CURSOR)
    return found.last_event_id if found is not None else None


def start_cursor(session: Session, last_event_id: int) -> None:
    """Make the cursor at last_event_id, unless a concurrent reading made it first."""
    try:
        with session.begin_nested():
            session.add(IntegrationCursor(name=CURSOR, last_event_id=last_event_id, updated_at=clock.now()))
    except IntegrityError:  # made meanwhile; the compare-and-set that follows decides who reads
        pass


def move_cursor(session: Session, expected: int, to: int) -> bool:
    """Move the cursor from expected to `to` in one compare-and-set; whether this call moved it (two readings
    never both take the same events)."""
    result = session.execute(update(IntegrationCursor)
                             .where(IntegrationCursor.name == CURSOR, IntegrationCursor.last_event_id == expected)
                             .values(last_event_id=to, updated_at=clock.now())
                             .execution_options(synchronize_session=False))
    return isinstance(result, CursorResult) and result.rowcount == 1
