"""Event kinds and how an event reads."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class EventKind(enum.StrEnum):
    """The signals Cloudlet records."""

    WALLET_LOW_BALANCE = "wallet.low_balance"
    SUBSCRIPTION_PAYMENT_FAILED = "subscription.payment_failed"
    SUBSCRIPTION_SUSPENDED = "subscription.suspended"
    SUBSCRIPTION_REACTIVATED = "subscription.reactivated"
    SUBSCRIPTION_ENDED = "subscription.ended"


class EventRead(BaseModel):
    """A recorded event."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    project_id: int | None
    kind: str
    subject: str | None
    payload: dict[str, Any]
    created_at: datetime
