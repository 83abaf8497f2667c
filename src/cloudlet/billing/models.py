"""Wallets, their immutable ledger, and the subscriptions the billing engine charges."""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from cloudlet.kit import clock
from cloudlet.kit.db import Base, UTCDateTime, enum_column


class Pool(enum.StrEnum):
    """Which money a wallet holds: the main wallet, or the AI agent's separate credit pool."""

    MAIN = "main"
    AGENT = "agent"


class EntryType(enum.StrEnum):
    """A ledger entry takes money out (debit) or puts it in (credit)."""

    DEBIT = "debit"
    CREDIT = "credit"


class EntryKind(enum.StrEnum):
    """Why money moved."""

    TOPUP = "topup"
    ADMIN_CREDIT = "admin_credit"
    ADMIN_DEBIT = "admin_debit"
    TRIAL_CREDIT = "trial_credit"
    CHARGE_CREATE = "charge_create"
    CHARGE_UPGRADE = "charge_upgrade"
    REFUND = "refund"
    RENEWAL = "renewal"
    HOURLY = "hourly"
    REACTIVATION = "reactivation"
    AGENT_USAGE = "agent_usage"
    AGENT_FUNDING = "agent_funding"  # money moved from the main wallet to the AI agent's credit pool


HOURLY = "hourly"  # the cycle code of hourly billing; every other code is a catalogue cycle of whole months


class SubscriptionStatus(enum.StrEnum):
    """Where a subscription stands."""

    ACTIVE = "active"
    SUSPENDED = "suspended"
    ENDED = "ended"


class Wallet(Base):
    """A project's money in one currency. Its balance is its newest ledger entry's balance_after."""

    __tablename__ = "wallets"
    __table_args__ = (UniqueConstraint("project_id", "pool"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    pool: Mapped[Pool] = mapped_column(enum_column(Pool), default=Pool.MAIN)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    low_balance_threshold_cents: Mapped[int | None] = mapped_column(BigInteger)
    auto_funding_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    auto_funding_threshold_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    auto_funding_amount_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, onupdate=clock.now)


class LedgerEntry(Base):
    """One immutable movement of money. amount_cents is signed (debits negative), so
    balance == SUM(amount_cents) == the newest entry's balance_after_cents."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        UniqueConstraint("wallet_id", "idempotency_key", name="uq_ledger_entries_wallet_id_idempotency_key"),
        # seq numbers a wallet's entries 1, 2, 3...; two writers that ever slipped past the
        # wallet lock would collide here instead of forking the running balance.
        UniqueConstraint("wallet_id", "seq", name="uq_ledger_entries_wallet_id_seq"),
        CheckConstraint("(type = 'credit' AND amount_cents > 0) OR (type = 'debit' AND amount_cents < 0)",
                        name="amount_sign"),
        CheckConstraint("balance_after_cents >= 0", name="no_overdraft"),
        Index("ix_ledger_entries_wallet_id_created_at", "wallet_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # RESTRICT: the ledger is never deleted; a wallet with entries keeps its project from being deleted
    wallet_id: Mapped[int] = mapped_column(ForeignKey("wallets.id", ondelete="RESTRICT"))
    seq: Mapped[int] = mapped_column(BigInteger)
    type: Mapped[EntryType] = mapped_column(enum_column(EntryType))
    kind: Mapped[EntryKind] = mapped_column(enum_column(EntryKind))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    balance_after_cents: Mapped[int] = mapped_column(BigInteger)
    idempotency_key: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(500), default="")
    reference: Mapped[str | None] = mapped_column(String(200))  # e.g. "subscription:12" or an instance id
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)


class Subscription(Base):
    """What the engine bills: a plan bought by a project for something (an instance), per cycle or hour."""

    __tablename__ = "subscriptions"
    __table_args__ = (Index("ix_subscriptions_status_billed_till", "status", "billed_till"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # RESTRICT: a project with subscriptions (servers being billed) cannot be deleted from under them
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="RESTRICT"), index=True)
    wallet_id: Mapped[int] = mapped_column(ForeignKey("wallets.id", ondelete="RESTRICT"))
    reference: Mapped[str] = mapped_column(String(200), unique=True)  # the instance it pays for
    plan_id: Mapped[int] = mapped_column(Integer)
    cycle: Mapped[str] = mapped_column(String(32))  # a catalogue cycle code ("monthly") or "hourly"
    months: Mapped[int] = mapped_column(Integer)  # the cycle's length; 1 when hourly (the cap's window)
    price_cents: Mapped[int] = mapped_column(BigInteger)  # one cycle's price; the monthly price when hourly
    anchor_at: Mapped[datetime] = mapped_column(UTCDateTime)  # cycles are counted in calendar months from here
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    period_start: Mapped[datetime] = mapped_column(UTCDateTime)
    billed_till: Mapped[datetime] = mapped_column(UTCDateTime)
    paid_cents: Mapped[int] = mapped_column(BigInteger, default=0)  # net paid for the current period
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[SubscriptionStatus] = mapped_column(enum_column(SubscriptionStatus),
                                                       default=SubscriptionStatus.ACTIVE)
    grace_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    suspended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, onupdate=clock.now)

    @property
    def hourly(self) -> bool:
        """Whether this subscription is billed per started hour."""
        return self.cycle == HOURLY


class ExchangeRate(Base):
    """How many units of a currency one US dollar buys, and when that was learnt."""

    __tablename__ = "exchange_rates"
    __table_args__ = (CheckConstraint("rate > 0", name="rate_positive"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), unique=True)
    rate: Mapped[Decimal] = mapped_column(Numeric(20, 8, asdecimal=True))
    source: Mapped[str] = mapped_column(String(200), default="manual")
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)


class ProjectPrice(Base):
    """A negotiated price of one plan for one project: a discount, or a fixed monthly price."""

    __tablename__ = "project_prices"
    __table_args__ = (
        UniqueConstraint("project_id", "plan_id"),
        CheckConstraint("(discount_bps IS NULL) <> (monthly_price IS NULL)", name="one_kind"),
        CheckConstraint("discount_bps IS NULL OR (discount_bps >= 0 AND discount_bps <= 10000)",
                        name="discount_range"),
        CheckConstraint("monthly_price IS NULL OR monthly_price >= 0", name="price_not_negative"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    # the plan is the catalogue's: referred to by key only; deleting the plan deletes its project prices
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id", ondelete="CASCADE"), index=True)
    discount_bps: Mapped[int | None] = mapped_column(Integer)
    monthly_price: Mapped[int | None] = mapped_column(BigInteger)  # minor units of USD
    note: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
