"""What Shield takes and gives."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Generic, TypeVar

from pydantic import BaseModel, Field

from cloudlet.drivers.base import FirewallAction, FirewallProtocol, RateUnit

PORT = Field(default=None, ge=1, le=65535)
RATE = Field(default=None, ge=1, le=1_000_000, description="An allow rule's limit per source address and second "
             "(extension): what a source sends beyond it is dropped.")
UNIT = Field(default=None, description="What rate_limit counts (extension): new connections (the default) or "
             "packets.")


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
    rate_limit: int | None = RATE
    rate_unit: RateUnit | None = UNIT


class RuleUpdate(BaseModel):
    """A change to a rule: the fields given replace the rule's."""

    action: FirewallAction | None = None
    protocol: FirewallProtocol | None = None
    src_cidr: str | None = Field(default=None, max_length=64)
    dst_port: int | None = PORT
    dst_port_end: int | None = Field(default=None, ge=1, le=65535)
    priority: int | None = Field(default=None, ge=1, le=1_000_000)
    rate_limit: int | None = RATE
    rate_unit: RateUnit | None = UNIT


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
    rate_limit: int | None = None
    rate_unit: RateUnit | None = None
    status: PushState
    created_at: datetime
    updated_at: datetime
    hits: Hits | None = None


class Policy(BaseModel):
    """An address's default policies."""

    default_in: FirewallAction
    default_out: FirewallAction


class BandwidthNow(BaseModel):
    """An address's server's traffic now, in bits per second: "in" to the guest, "out" from it."""

    in_bps: float
    out_bps: float


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
    bandwidth: BandwidthNow | None = None  # from the metrics sampler's newest reading of its server (list only)


class IpProfileRead(IpRecordRead):
    """An address with its rules, and what its inbound policy matched (as for rules' hits)."""

    rules: Sequence[RuleRead]  # a Sequence, so that a surface may render its rules as a subclass
    policy_hits: Hits | None = None


# --- bandwidth and monthly transfer (shield/bandwidth.py) ------------------------------------------------------


class QuotaState(StrEnum):
    """Where a server stands against its plan's monthly transfer."""

    UNLIMITED = "unlimited"  # the plan counts no transfer (bandwidth_gb 0)
    OK = "ok"
    WARNED = "warned"  # past the warning threshold (CLOUDLET_TRANSFER_WARN_PERCENT)
    THROTTLED = "throttled"  # used up: held at CLOUDLET_TRANSFER_THROTTLE_MBIT until the month ends


class TransferRead(BaseModel):
    """A server's transfer this calendar month (UTC): bytes to it and from it, both counted against its plan's."""

    month: str  # "2026-03"
    in_bytes: int
    out_bytes: int
    total_bytes: int
    quota_bytes: int | None  # the plan's bandwidth_gb (1 GB = 10^9 bytes); None when it counts none
    used_percent: float | None
    warn_percent: int
    state: QuotaState
    throttled_until: datetime | None


class BandwidthPoint(BaseModel):
    """Bits per second over one interval of the metrics history, ending (raw) or starting (5m) at `at`."""

    at: datetime
    in_bps: float
    out_bps: float


class IpBandwidthRead(BaseModel):
    """An address's series of bits per second in and out (its server's NIC), its caps and its month's transfer."""

    id: int
    ip: str
    instance_id: str
    period: str
    resolution: str
    cap_mbit: int | None  # the plan's cap each way; None: uncapped
    effective_cap_mbit: int | None  # what the NIC has now: the throttle's while throttled
    current: BandwidthNow | None
    points: list[BandwidthPoint]
    transfer: TransferRead


class QuotaReport(BaseModel):
    """What one transfer quota round did."""

    checked: int = 0
    capped: int = 0  # NICs whose cap was changed to what they should have
    warned: int = 0
    throttled: int = 0
    restored: int = 0
    unreachable: list[str] = []


class SourceRead(BaseModel):
    """A source address and what it sent to the address in the period; where it is when the operator configured
    the GeoIP databases."""

    ip: str
    packets: int
    bytes: int
    share: float  # of the bytes of the sources ranked in the period
    country: str | None = None  # ISO 3166 code
    asn: int | None = None


class SystemRead(BaseModel):
    """An autonomous system and what its addresses sent."""

    asn: int | None  # None: addresses the ASN database does not know
    name: str
    packets: int
    bytes: int
    share: float


class CountryRead(BaseModel):
    """A country and what its addresses sent."""

    country: str | None  # ISO 3166 code; None: addresses the country database does not know
    name: str
    packets: int
    bytes: int
    share: float


class PortRead(BaseModel):
    """A destination port of the address and what reached it."""

    protocol: str
    port: int
    packets: int
    bytes: int
    share: float


class DroppedRead(BaseModel):
    """Packets the address's firewall dropped, from one source to one destination port."""

    ip: str
    protocol: str
    port: int
    packets: int
    bytes: int


class RatePoint(BaseModel):
    """Inbound packets and bits per second over the `seconds` before `at`."""

    at: datetime
    seconds: float
    pps: float
    bps: float


Item = TypeVar("Item", bound=BaseModel)


class Ranking(BaseModel, Generic[Item]):
    """What reached an address in a period, ranked: by bytes unless asked by packets. `total` is every inbound
    packet the address's node counted in the period; the items rank each reading's busiest sources and ports
    (the quieter ones are not kept)."""

    period: str
    since: datetime
    total: Hits
    items: Sequence[Item]


class PpsSeries(BaseModel):
    """The address's inbound packets per second over a period, a point for each reading of its node."""

    period: str
    since: datetime
    points: Sequence[RatePoint]
