"""What can be bought: regions, plan categories, plans, billing cycles and OS templates (exchange rates
and project prices are the billing domain's, a region's IP pools the networking domain's)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cloudlet.kit import clock
from cloudlet.kit.db import Base, UTCDateTime

plan_regions = Table(
    "plan_regions",
    Base.metadata,
    Column("plan_id", ForeignKey("plans.id", ondelete="CASCADE"), primary_key=True),
    Column("region_id", ForeignKey("regions.id", ondelete="CASCADE"), primary_key=True),
)


class Region(Base):
    """A datacenter location customers choose (CyberPanel's location, WaysCloud's region)."""

    __tablename__ = "regions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    country: Mapped[str] = mapped_column(String(2))  # ISO 3166-1 alpha-2
    flag: Mapped[str] = mapped_column(String(16), default="")
    is_available: Mapped[bool] = mapped_column(Boolean, default=True)
    sort_order: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)


class PlanCategory(Base):
    """A family of plans sold side by side ("standard", "cpu-optimized")."""

    __tablename__ = "plan_categories"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(500), default="")
    sort_order: Mapped[int] = mapped_column(Integer, default=0)


class Plan(Base):
    """A size of server at a monthly price in minor units of the base currency (USD cents)."""

    __tablename__ = "plans"
    __table_args__ = (CheckConstraint("monthly_price >= 0", name="price_not_negative"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    category_id: Mapped[int] = mapped_column(ForeignKey("plan_categories.id", ondelete="RESTRICT"), index=True)
    vcpu: Mapped[int] = mapped_column(Integer)
    ram_mb: Mapped[int] = mapped_column(Integer)
    disk_gb: Mapped[int] = mapped_column(Integer)
    bandwidth_gb: Mapped[int] = mapped_column(Integer)  # the monthly transfer included (0: not counted)
    bandwidth_mbit: Mapped[int | None] = mapped_column(Integer)  # the NIC's cap each way; None: uncapped
    monthly_price: Mapped[int] = mapped_column(BigInteger)  # minor units of USD
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    sort_order: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, onupdate=clock.now)

    category: Mapped[PlanCategory] = relationship(lazy="joined")
    regions: Mapped[list[Region]] = relationship(secondary=plan_regions, order_by=Region.sort_order,
                                                 lazy="selectin")


class BillingCycle(Base):
    """How long one payment buys ("monthly" = 1 month) and the discount for paying that far ahead."""

    __tablename__ = "billing_cycles"
    __table_args__ = (
        CheckConstraint("months > 0", name="months_positive"),
        CheckConstraint("discount_bps >= 0 AND discount_bps <= 10000", name="discount_range"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    months: Mapped[int] = mapped_column(Integer)
    discount_bps: Mapped[int] = mapped_column(Integer, default=0)  # 1000 = 10%
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    sort_order: Mapped[int] = mapped_column(Integer, default=0)


class OsTemplate(Base):
    """An operating system a server can be built with; `image_id` is filled when images exist."""

    __tablename__ = "os_templates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)  # "debian-12", WaysCloud's id
    family: Mapped[str] = mapped_column(String(32), index=True)  # "debian", the group it is listed under
    name: Mapped[str] = mapped_column(String(200))  # "Debian 12"
    os: Mapped[str] = mapped_column(String(200), default="")  # "Debian 12 (bookworm)", CyberPanel's os
    version: Mapped[str] = mapped_column(String(32), default="")
    is_windows: Mapped[bool] = mapped_column(Boolean, default=False)
    min_balance: Mapped[int] = mapped_column(BigInteger, default=0)  # minor units of USD, checked at order
    min_ram_mb: Mapped[int] = mapped_column(Integer, default=0)
    min_disk_gb: Mapped[int] = mapped_column(Integer, default=0)
    description: Mapped[str] = mapped_column(Text, default="")
    image_id: Mapped[int | None] = mapped_column(Integer)  # the image it boots from (images: next issue)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    sort_order: Mapped[int] = mapped_column(Integer, default=0)

