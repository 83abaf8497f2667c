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
    ALERT_OPENED = "alert.opened"  # an alert rule's condition started holding (payload: AlertNotice)
    ALERT_RESOLVED = "alert.resolved"  # it stopped holding (payload: AlertNotice)
    GIT_PUSH = "git.push"  # a verified push from GitHub or GitLab, kept for git deploy (payload: GitPush)


class GitProvider(enum.StrEnum):
    """Where a git push was announced from."""

    GITHUB = "github"
    GITLAB = "gitlab"


class GitPush(BaseModel):
    """The payload of a git.push event: what was pushed where, as the provider announced it."""

    provider: GitProvider
    repository: str  # "owner/name" (GitLab: the project's path with its namespace)
    ref: str  # "refs/heads/main", "refs/tags/v1.2"
    after: str  # the commit the ref points to now (forty zeros: the ref was deleted)
    pusher: str
    delivery: str | None = None  # the provider's delivery id (X-GitHub-Delivery, X-Gitlab-Event-UUID)
    webhook_token_id: int  # the token that verified it


class AlertNotice(BaseModel):
    """The payload of alert.opened and alert.resolved: what an integration says of an alert (subject
    "alert:<id>"). Plain values, so a reader needs nothing of the alerts domain."""

    alert_id: str  # the alert's uuid
    rule_id: str | None  # the rule's uuid
    organization_id: int  # the project
    rule_name: str
    status: str  # open, resolved
    severity: str  # info, warn, critical
    target_type: str  # instance, node
    target_id: str  # the instance's uuid, the node's id
    target_name: str
    metric: str  # cpu_usage, memory_usage, disk_read, disk_write, network_in, network_out, node_down, action_failures
    operator: str  # gt, gte, lt, lte
    threshold: float
    duration_seconds: int
    value: float | None  # the newest value seen
    message: str  # one line saying all of the above
    opened_at: datetime
    resolved_at: datetime | None


class EventRead(BaseModel):
    """A recorded event."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    project_id: int | None
    kind: str
    subject: str | None
    payload: dict[str, Any]
    created_at: datetime
