"""Public addresses: the IP pools of each region, the addresses allocated out of them, and their PTR names."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from cloudlet.kit import clock
from cloudlet.kit.db import Base, UTCDateTime


class IpPool(Base):
    """A block of public addresses in one region, less its gateway and reserved addresses."""

    __tablename__ = "ip_pools"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # the region is the catalogue's: referred to by key only, and read through the catalogue's service
    region_id: Mapped[int] = mapped_column(ForeignKey("regions.id", ondelete="RESTRICT"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    cidr: Mapped[str] = mapped_column(String(64), unique=True)  # normalised, e.g. "203.0.113.0/24"
    gateway: Mapped[str | None] = mapped_column(String(64))
    reserved: Mapped[list[str]] = mapped_column(JSON, default=list)  # addresses or CIDRs inside the pool
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)


class IpAllocation(Base):
    """One address of a pool in use, held by its owner (an instance id)."""

    __tablename__ = "ip_allocations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pool_id: Mapped[int] = mapped_column(ForeignKey("ip_pools.id", ondelete="RESTRICT"), index=True)
    address: Mapped[str] = mapped_column(String(64), unique=True)
    instance_id: Mapped[str | None] = mapped_column(String(64), index=True)
    allocated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)


class ReverseDns(Base):
    """The PTR name of one allocated address; removed with the allocation so a new owner starts clean."""

    __tablename__ = "ip_reverse_dns"

    # keyed by the address, not the allocation id: a PTR name belongs to the address whoever holds it
    address: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(253))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, onupdate=clock.now)
