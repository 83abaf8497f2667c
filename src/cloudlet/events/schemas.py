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
    INSTANCE_DRIFTED = "instance.drifted"  # the reconciler found a guest not in the state the database said
    NODE_UNKNOWN_GUEST = "node.unknown_guest"  # a guest on a node that no instance owns (reported, never destroyed)
    TRANSFER_WARNING = "instance.transfer_warning"  # a server passed the warning share of its monthly transfer
    TRANSFER_THROTTLED = "instance.transfer_throttled"  # it used its monthly transfer up: throttled till month end
    TRANSFER_RESTORED = "instance.transfer_restored"  # a new month: its plan's cap is back


class EventRead(BaseModel):
    """A recorded event."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    project_id: int | None
    kind: str
    subject: str | None
    payload: dict[str, Any]
    created_at: datetime
