"""Hypervisor nodes, the capacity reserved on them, and the single-use tokens that register new ones.

A node's `status` is its health as the heartbeat last saw it (ready or unreachable); cordoning is a
separate flag, so uncordoning a node gives back whatever health it had. The API shows one effective
status: unreachable, else cordoned, else ready.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, CheckConstraint, ForeignKey, Integer, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from cloudlet.drivers.base import FirewallAction, FirewallProtocol
from cloudlet.kit import clock
from cloudlet.kit.db import Base, UTCDateTime, enum_column


class NodeStatus(StrEnum):
    """What a node can do now: take guests, nothing new (cordoned), or nothing at all (unreachable)."""

    READY = "ready"
    CORDONED = "cordoned"
    UNREACHABLE = "unreachable"


class Node(Base):
    """A libvirt host in a region, with its capacity, its overcommit ratios and what is reserved on it."""

    __tablename__ = "nodes"
    __table_args__ = (
        CheckConstraint("vcpu_total >= 0 AND memory_mib_total >= 0 AND disk_gib_total >= 0", name="capacity"),
        CheckConstraint("cpu_ratio > 0 AND memory_ratio > 0 AND disk_ratio > 0", name="ratios_positive"),
        CheckConstraint("vcpu_used >= 0 AND memory_mib_used >= 0 AND disk_gib_used >= 0", name="used"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    uri: Mapped[str] = mapped_column(String(500))
    region_id: Mapped[int] = mapped_column(ForeignKey("regions.id", ondelete="RESTRICT"), index=True)
    vcpu_total: Mapped[int] = mapped_column(Integer)
    memory_mib_total: Mapped[int] = mapped_column(Integer)
    disk_gib_total: Mapped[int] = mapped_column(Integer)
    cpu_ratio: Mapped[Decimal] = mapped_column(Numeric(6, 2, asdecimal=True), default=Decimal("1"))
    memory_ratio: Mapped[Decimal] = mapped_column(Numeric(6, 2, asdecimal=True), default=Decimal("1"))
    disk_ratio: Mapped[Decimal] = mapped_column(Numeric(6, 2, asdecimal=True), default=Decimal("1"))
    # held back for the host itself, never offered to guests
    vcpu_reserved: Mapped[int] = mapped_column(Integer, default=0)
    memory_mib_reserved: Mapped[int] = mapped_column(Integer, default=0)
    disk_gib_reserved: Mapped[int] = mapped_column(Integer, default=0)
    # the sum of the node's open reservations, kept beside the row so placement locks one row per node
    vcpu_used: Mapped[int] = mapped_column(Integer, default=0)
    memory_mib_used: Mapped[int] = mapped_column(Integer, default=0)
    disk_gib_used: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default=NodeStatus.UNREACHABLE.value)  # ready | unreachable
    cordoned: Mapped[bool] = mapped_column(Boolean, default=False)
    status_reason: Mapped[str] = mapped_column(String(500), default="")
    last_heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    inventory: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    inventory_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, onupdate=clock.now)


class NodeReservation(Base):
    """Capacity set aside on a node for one guest; released once (released_at) when the guest goes."""

    __tablename__ = "node_reservations"
    __table_args__ = (CheckConstraint("vcpu > 0 AND memory_mib > 0 AND disk_gib > 0", name="positive"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="RESTRICT"), index=True)
    vcpu: Mapped[int] = mapped_column(Integer)
    memory_mib: Mapped[int] = mapped_column(Integer)
    disk_gib: Mapped[int] = mapped_column(Integer)
    holder: Mapped[str] = mapped_column(String(200), default="")  # who holds it, e.g. "instance:42"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class NodeRegistrationToken(Base):
    """A single-use, expiring secret that lets a new node register itself; stored only as its digest."""

    __tablename__ = "node_registration_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    node_id: Mapped[int | None] = mapped_column(ForeignKey("nodes.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)


class NodeFirewallRule(Base):
    """One rule of a node's own inbound firewall; the node's rules decide in the order they were added (by id)."""

    __tablename__ = "node_firewall_rules"
    __table_args__ = (CheckConstraint("port_from IS NULL OR (port_from >= 1 AND port_to >= port_from "
                                      "AND port_to <= 65535)", name="port_range"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"), index=True)
    action: Mapped[FirewallAction] = mapped_column(enum_column(FirewallAction))
    protocol: Mapped[FirewallProtocol] = mapped_column(enum_column(FirewallProtocol))
    source: Mapped[str | None] = mapped_column(String(64))  # a CIDR; None for any source
    port_from: Mapped[int | None] = mapped_column(Integer)
    port_to: Mapped[int | None] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
