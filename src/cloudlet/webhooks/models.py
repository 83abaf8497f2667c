"""The webhook delivery log: one row per notification, kept whether or not it arrived."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Enum, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cloudlet.kit import clock
from cloudlet.kit.db import Base, UTCDateTime


class DeliveryStatus(enum.StrEnum):
    """pending: not yet answered with 2xx and attempts remain; delivered: 2xx; failed: given up."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class WebhookDelivery(Base):
    """One notification to one URL: the exact body sent on every attempt, and how the attempts went."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # the id of the delivery's DBOS workflow: random, so a database started afresh beside an old
    # workflow store can never find its new deliveries already "done" there under a reused row id
    workflow_id: Mapped[str] = mapped_column(String(64), unique=True)
    reference: Mapped[str | None] = mapped_column(String(100), index=True)  # e.g. the instance's id
    url: Mapped[str] = mapped_column(String(2048))
    # Sealed (kit/secretbox): the HMAC needs the secret itself, so a digest would not do. Never shown.
    secret: Mapped[str | None] = mapped_column(String(1000))
    event: Mapped[str] = mapped_column(String(100))
    body: Mapped[str] = mapped_column(Text)  # the JSON bytes that are signed and sent, fixed at enqueue
    status: Mapped[DeliveryStatus] = mapped_column(
        Enum(DeliveryStatus, native_enum=False, length=20, values_callable=lambda e: [m.value for m in e]),
        default=DeliveryStatus.PENDING,
        index=True,
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(1000))
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
