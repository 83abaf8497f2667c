"""Shield: the firewall of each address Cloudlet hands out (its rules and default policies), and what each node
was last given.

An address's firewall row exists once its owner changed anything (an address without one allows everything);
it goes with the address (the allocation's deletion cascades). `revision` counts changes, `applied_revision`
is the last one the address's node enforced; a rule remembers the revision that last changed it, so it shows
`pending` until its node has it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cloudlet.drivers.base import FirewallAction, FirewallProtocol, RateUnit
from cloudlet.kit import clock
from cloudlet.kit.db import Base, UTCDateTime, enum_column


class AddressFirewallRow(Base):
    """The firewall of one allocated address."""

    __tablename__ = "address_firewalls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    allocation_id: Mapped[int] = mapped_column(ForeignKey("ip_allocations.id", ondelete="CASCADE"), unique=True)
    default_in: Mapped[FirewallAction] = mapped_column(enum_column(FirewallAction), default=FirewallAction.ALLOW)
    default_out: Mapped[FirewallAction] = mapped_column(enum_column(FirewallAction), default=FirewallAction.ALLOW)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    applied_revision: Mapped[int] = mapped_column(Integer, default=0)
    push_error: Mapped[str] = mapped_column(Text, default="")  # why the last push of `revision` failed
    pushed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)


class FirewallRule(Base):
    """One inbound rule; the lowest priority decides first."""

    __tablename__ = "firewall_rules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    firewall_id: Mapped[int] = mapped_column(ForeignKey("address_firewalls.id", ondelete="CASCADE"), index=True)
    priority: Mapped[int] = mapped_column(Integer)
    action: Mapped[FirewallAction] = mapped_column(enum_column(FirewallAction))
    protocol: Mapped[FirewallProtocol] = mapped_column(enum_column(FirewallProtocol))
    src_cidr: Mapped[str] = mapped_column(String(64))  # "0.0.0.0/0" or "::/0" for any source
    port_from: Mapped[int | None] = mapped_column(Integer)
    port_to: Mapped[int | None] = mapped_column(Integer)
    rate_limit: Mapped[int | None] = mapped_column(Integer)  # per source and second, allow rules only
    rate_unit: Mapped[RateUnit | None] = mapped_column(enum_column(RateUnit))
    revision: Mapped[int] = mapped_column(Integer)  # the firewall's revision that last changed it
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, onupdate=clock.now)


class TrafficSample(Base):
    """What reached an address between two readings of its node's counters (visibility): kind "all" is every
    inbound packet (with the seconds between the readings, for rates); "source" one source address; "port" one
    "tcp/80"-style destination; "dropped" one "source tcp/80" the firewall dropped. Only a reading's busiest
    sources, ports and drops are kept, and nothing older than a day."""

    __tablename__ = "traffic_samples"
    __table_args__ = (Index("ix_traffic_samples_allocation_kind_at", "allocation_id", "kind", "sampled_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    allocation_id: Mapped[int] = mapped_column(ForeignKey("ip_allocations.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(128))
    packets: Mapped[int] = mapped_column(BigInteger)
    bytes: Mapped[int] = mapped_column(BigInteger)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    sampled_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
