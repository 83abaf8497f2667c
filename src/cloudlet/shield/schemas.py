"""What Shield takes and gives."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from cloudlet.drivers.base import FirewallAction, FirewallProtocol

PORT = Field(default=None, ge=1, le=65535)


class PushState(StrEnum):
    """Whether the address's node enforces the rule or policy as it stands."""

    PENDING = "pending"
    ACTIVE = "active"
    ERROR = "error"


class RuleCreate(BaseModel):
    """A new inbound rule (Evorxa's body; `dst_port_end` and `priority` are extensions)."""

    action: FirewallAction
    protocol: FirewallProtocol
    src_cidr: str | None = Field(default=None, max_length=64, description="Default: any source of the family.")
    dst_port: int | None = PORT
    dst_port_end: int | None = Field(default=None, ge=1, le=65535, description="With dst_port: a range.")
    priority: int | None = Field(default=None, ge=1, le=1_000_000, description="Lowest first; default: last.")


class RuleUpdate(BaseModel):
    """A change to a rule: the fields given replace the rule's."""

    action: FirewallAction | None = None
    protocol: FirewallProtocol | None = None
    src_cidr: str | None = Field(default=None, max_length=64)
    dst_port: int | None = PORT
    dst_port_end: int | None = Field(default=None, ge=1, le=65535)
    priority: int | None = Field(default=None, ge=1, le=1_000_000)


class PolicyUpdate(BaseModel):
    """The default policies; a direction left out keeps its policy."""

    default_in: FirewallAction | None = None
    default_out: FirewallAction | None = None


class Hits(BaseModel):
    """What a rule or policy matched since its node's table was last written."""

    packets: int
    bytes: int


class RuleRead(BaseModel):
    """An inbound rule, whether its node enforces it yet, and what it matched (in an address's profile, while the
    node enforces the address's latest change and answers)."""

    id: int
    priority: int
    action: FirewallAction
    protocol: FirewallProtocol
    src_cidr: str
    dst_port: int | None
    dst_port_end: int | None
    status: PushState
    created_at: datetime
    updated_at: datetime
    hits: Hits | None = None


class Policy(BaseModel):
    """An address's default policies."""

    default_in: FirewallAction
    default_out: FirewallAction


class IpRecordRead(BaseModel):
    """An address of the caller's servers with its firewall's summary."""

    id: int
    ip: str
    version: int
    instance_id: str
    instance_name: str
    rdns: str | None
    rules_count: int
    policy: Policy
    status: PushState
    error: str | None


class IpProfileRead(IpRecordRead):
    """An address with its rules, and what its inbound policy matched (as for rules' hits)."""

    rules: Sequence[RuleRead]  # a Sequence, so that a surface may render its rules as a subclass
    policy_hits: Hits | None = None
