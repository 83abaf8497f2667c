"""Integrations, their delivery log, and where the reading of events stands.

An integration is where a project wants its events told: a Slack or Discord channel (an incoming webhook), a
Telegram chat (through the operator's bot), any HTTPS endpoint (a signed webhook) or an email address. What it
needs to send is kept sealed (kit/secretbox), since webhook URLs carry their tokens; what it shows is a masked
copy. A delivery is one message to one integration: the events it tells of (several, when they came at once),
fixed when it is queued, and how the attempts went.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cloudlet.kit import clock
from cloudlet.kit.db import Base, UTCDateTime, enum_column


class IntegrationType(enum.StrEnum):
    """Where an integration sends."""

    SLACK = "slack"  # a Slack incoming webhook
    DISCORD = "discord"  # a Discord channel webhook
    TELEGRAM = "telegram"  # a chat of the operator's Telegram bot
    WEBHOOK = "webhook"  # any HTTP(S) endpoint, JSON signed with X-Webhook-Signature
    EMAIL = "email"  # an address, through the outbox


class DeliveryStatus(enum.StrEnum):
    """pending: attempts remain; delivered: the service took it (2xx, or queued in the outbox); failed: given up."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class Integration(Base):
    """One destination of a project's events."""

    __tablename__ = "integrations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    type: Mapped[IntegrationType] = mapped_column(enum_column(IntegrationType))
    name: Mapped[str] = mapped_column(String(100))
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # what is shown: secrets masked
    sealed_config: Mapped[str] = mapped_column(Text)  # the whole config as JSON, sealed: what is sent with
    events: Mapped[list[str]] = mapped_column(JSON, default=list)  # event kinds it receives; ["*"]: every kind
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # the newest event when it was made: it is told of later ones only, never of a project's past
    since_event_id: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, onupdate=clock.now)


class IntegrationDelivery(Base):
    """One message to one integration: what it tells, fixed at queueing, and how its attempts went."""

    __tablename__ = "integration_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # the id of its DBOS workflow: random, so a database started afresh never finds it "done" in an old store
    workflow_id: Mapped[str] = mapped_column(String(64), unique=True)
    integration_id: Mapped[int] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"), index=True)
    test: Mapped[bool] = mapped_column(Boolean, default=False)  # POST /v1/integrations/{id}/test
    kinds: Mapped[list[str]] = mapped_column(JSON, default=list)  # the kinds of its events, in order
    # [{"id", "kind", "subject", "payload", "created_at"}]: the events it tells of, as they were recorded
    events: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    status: Mapped[DeliveryStatus] = mapped_column(enum_column(DeliveryStatus), default=DeliveryStatus.PENDING,
                                                   index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(1000))
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class IntegrationCursor(Base):
    """Where the reading of events stands: the newest event id already fanned out to integrations."""

    __tablename__ = "integration_cursors"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)  # "events": one reader, named for clarity
    last_event_id: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, onupdate=clock.now)
