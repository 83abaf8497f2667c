"""SQL for the webhook delivery log."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloudlet.webhooks.models import DeliveryStatus, WebhookDelivery


def insert(session: Session, delivery: WebhookDelivery) -> WebhookDelivery:
    """Add a delivery and give it its id."""
    session.add(delivery)
    session.flush()
    return delivery


def get(session: Session, delivery_id: int) -> WebhookDelivery | None:
    """A delivery by id."""
    return session.get(WebhookDelivery, delivery_id)


def for_reference(session: Session, reference: str) -> list[WebhookDelivery]:
    """Every delivery about one object, oldest first."""
    query = select(WebhookDelivery).where(WebhookDelivery.reference == reference).order_by(WebhookDelivery.id)
    return list(session.scalars(query))


def pending(session: Session, limit: int) -> list[tuple[int, str]]:
    """(id, workflow id) of the deliveries still pending, oldest first."""
    query = (select(WebhookDelivery.id, WebhookDelivery.workflow_id)
             .where(WebhookDelivery.status == DeliveryStatus.PENDING).order_by(WebhookDelivery.id).limit(limit))
    return [(row.id, row.workflow_id) for row in session.execute(query)]
