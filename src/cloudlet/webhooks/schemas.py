"""Webhook events, the CyberPanel deployment payload, and how a delivery reads (never its secret)."""

from __future__ import annotations

import enum
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_serializer

from cloudlet.webhooks.models import DeliveryStatus


class WebhookEvent(enum.StrEnum):
    """The events Cloudlet notifies webhooks of (CyberPanel's names)."""

    DEPLOYMENT_COMPLETED = "vps.deployment.completed"
    DEPLOYMENT_FAILED = "vps.deployment.failed"


class DeploymentData(BaseModel):
    """The `data` of a deployment notification, as CyberPanel's reference shows it."""

    vps_id: int
    name: str
    status: str
    ip_address: str | None
    deployment_time_seconds: int


class DeploymentNotice(BaseModel):
    """A deployment webhook's body: {"event", "timestamp", "data": {...}}."""

    event: WebhookEvent
    timestamp: datetime
    data: DeploymentData

    @field_serializer("timestamp")
    def _utc_z(self, value: datetime) -> str:
        # the reference writes "2026-01-05T15:03:00Z": whole seconds, UTC, a Z suffix
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")


class WebhookDeliveryRead(BaseModel):
    """A delivery in the log: where, what, and how it went; whether it is signed, never with what."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    reference: str | None
    url: str
    event: str
    status: DeliveryStatus
    signed: bool = Field(description="Whether requests carry X-Webhook-Signature.")
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None
