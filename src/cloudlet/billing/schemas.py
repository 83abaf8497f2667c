"""What the billing service takes and gives: wallets, ledger entries, subscriptions, quotes, exchange rates,
project prices and the prices worked out from them."""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cloudlet.auth.models import User
from cloudlet.billing.models import EntryKind, EntryType, Pool, SubscriptionStatus
from cloudlet.catalog.schemas import (
    Bps,
    CategoryRead,
    MajorAmount,
    MinorAmount,
    PlanRead,
    strict_decimal,
    usd_minor,
)
from cloudlet.kit import money
from cloudlet.kit.ids import MAX_ID

MAX_AMOUNT_CENTS = 100_000_000_00  # one hundred million in major units: a typo guard, not a policy


class Actor(Protocol):
    """Who acts on a wallet: a user, the project they act in by default, and the one their credential is fenced to."""

    @property
    def user(self) -> User:
        """The acting user."""
        ...

    @property
    def project_id(self) -> int:
        """The project used when a request names none."""
        ...

    @property
    def project_scope(self) -> int | None:
        """The project the credential is limited to, or None."""
        ...


def to_major(cents: int, currency: str = "USD") -> Decimal:
    """Minor units as a Decimal of major units (2 places)."""
    return (Decimal(cents) / 100).quantize(Decimal("0.01"))


class EntryRead(BaseModel):
    """One ledger entry as the service returns it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    wallet_id: int
    seq: int
    type: EntryType
    kind: EntryKind
    amount_cents: int
    balance_after_cents: int
    idempotency_key: str
    description: str
    reference: str | None
    created_at: datetime


class WalletRead(BaseModel):
    """A wallet with its balance."""

    id: int
    project_id: int
    pool: Pool
    currency: str
    balance_cents: int
    low_balance_threshold_cents: int | None
    auto_funding_enabled: bool
    auto_funding_threshold_cents: int
    auto_funding_amount_cents: int

    @property
    def balance(self) -> Decimal:
        """The balance in major units."""
        return to_major(self.balance_cents, self.currency)


class WalletUpdate(BaseModel):
    """Wallet settings a project may change; fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    low_balance_threshold_cents: int | None = Field(default=None, ge=0, le=MAX_AMOUNT_CENTS)
    auto_funding_enabled: bool | None = None
    auto_funding_threshold_cents: int | None = Field(default=None, ge=0, le=MAX_AMOUNT_CENTS)
    auto_funding_amount_cents: int | None = Field(default=None, ge=0, le=MAX_AMOUNT_CENTS)


class AgentFunding(BaseModel):
    """Money to move from the project's main wallet into its AI agent credit pool."""

    model_config = ConfigDict(extra="forbid")

    amount_cents: int = Field(gt=0, le=MAX_AMOUNT_CENTS)


class AgentCreditsRead(BaseModel):
    """The AI agent's credit pool: its balance (trial credit included) and the trial credit left."""

    balance_cents: int
    trial_remaining_cents: int


class CreditCreate(BaseModel):
    """An administrator's credit (or a top-up): a positive amount and why."""

    model_config = ConfigDict(extra="forbid")

    amount_cents: int = Field(gt=0, le=MAX_AMOUNT_CENTS)
    reason: str = Field(default="", max_length=500)
    pool: Pool = Field(default=Pool.MAIN, description="Extension: `agent` credits the AI agent's credit pool.")


class TopUpCreate(BaseModel):
    """A top-up of the wallet through the payment provider."""

    model_config = ConfigDict(extra="forbid")

    amount_cents: int = Field(gt=0, le=MAX_AMOUNT_CENTS)


class TopUpRead(BaseModel):
    """A settled top-up: the credit entry and the balance after it."""

    provider: str
    provider_reference: str
    entry: EntryRead
    balance_cents: int


class TransactionPage(BaseModel):
    """One page of a wallet's ledger, newest first."""

    items: list[EntryRead]
    total: int
    limit: int
    offset: int


class UsageRead(BaseModel):
    """What a project spent and received in a period, and where its wallet stands."""

    project_id: int
    currency: str
    period_start: datetime
    period_end: datetime
    debited_cents: int
    credited_cents: int
    balance_cents: int
    active_subscriptions: int
    suspended_subscriptions: int
    monthly_run_rate_cents: int


class SubscriptionCreate(BaseModel):
    """What the instance lifecycle asks the engine to start billing; the price comes from the catalogue."""

    project_id: int
    reference: str = Field(min_length=1, max_length=200)
    plan_id: int
    cycle: str = Field(min_length=1, max_length=32)  # a catalogue cycle code, or "hourly"
    months: int = Field(default=1, ge=1, le=120)  # the cycle's length (1 when hourly)
    price_cents: int = Field(ge=0, le=MAX_AMOUNT_CENTS)  # one cycle; the monthly price when hourly


class SubscriptionRead(BaseModel):
    """A subscription as the engine sees it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    project_id: int
    reference: str
    plan_id: int
    cycle: str
    months: int
    price_cents: int
    started_at: datetime
    period_start: datetime
    billed_till: datetime
    paid_cents: int
    cancel_at_period_end: bool
    status: SubscriptionStatus
    grace_until: datetime | None
    suspended_at: datetime | None
    ended_at: datetime | None


class Charge(BaseModel):
    """The result of one engine step: the subscription after it and the entry it posted (if any)."""

    subscription: SubscriptionRead
    entry: EntryRead | None
    amount_cents: int  # what moved: positive for a debit, negative for a refund, 0 when nothing did


class Renewal(BaseModel):
    """What bringing one subscription's billing up to date did."""

    subscription: SubscriptionRead
    entries: list[EntryRead]


class QuoteAction(enum.StrEnum):
    """What a quote prices."""

    CREATE = "create"
    UPGRADE = "upgrade"
    DELETE = "delete"


class QuoteRead(BaseModel):
    """A price computed without changing anything: positive to pay, negative to get back."""

    action: QuoteAction
    currency: str
    amount_cents: int
    period_start: datetime
    period_end: datetime
    balance_cents: int  # the wallet's, in the wallet's currency
    sufficient_balance: bool | None  # None when the quote is in another currency than the wallet


class AccountRead(BaseModel):
    """A user's account with the balance of their default project's wallet."""

    id: int
    email: str
    full_name: str
    balance_cents: int
    currency: str
    active: bool
    two_factor_enabled: bool
    registration_date: datetime


class BillingOverview(BaseModel):
    """A wallet with its newest ledger entries."""

    wallet: WalletRead
    recent: list[EntryRead]


class RunReport(BaseModel):
    """What a billing run did."""

    renewed: int = 0
    ended: int = 0
    hours_charged: int = 0
    in_grace: int = 0
    suspended: int = 0


# ---- exchange rates ------------------------------------------------------------------------------

class RateSet(BaseModel):
    """A rate to store for a currency: how many units one US dollar buys."""

    rate: Decimal = Field(gt=0, le=10**9, max_digits=20, decimal_places=8)
    source: str = Field(default="manual", max_length=200)
    fetched_at: datetime | None = None  # when it was learnt; now if not given

    _decimal = field_validator("rate", mode="before")(strict_decimal)


class RateRead(BaseModel):
    """A stored exchange rate. USD, the base, is 1 and has no fetched_at."""

    currency: str
    rate: Decimal
    minor_units: int
    source: str
    fetched_at: datetime | None


# ---- per-project prices --------------------------------------------------------------------------

class OverrideKind(enum.StrEnum):
    """How a project's price of a plan differs from the list price."""

    DISCOUNT = "discount"
    FIXED = "fixed"


class ProjectPriceCreate(BaseModel):
    """A project's own price of a plan: `discount_bps`, or a fixed monthly USD price."""

    project_id: int = Field(ge=1, le=MAX_ID)
    plan_id: int = Field(ge=1, le=MAX_ID)
    discount_bps: Bps | None = None
    monthly_price_cents: MinorAmount | None = None
    monthly_price: MajorAmount | None = None
    note: str = Field(default="", max_length=500)

    _decimal = field_validator("monthly_price", mode="before")(strict_decimal)

    @model_validator(mode="after")
    def _one_kind(self) -> ProjectPriceCreate:
        self.monthly_price_cents = usd_minor(self.monthly_price_cents, self.monthly_price, "monthly_price",
                                              required=False)
        self.monthly_price = None
        if (self.discount_bps is None) == (self.monthly_price_cents is None):
            raise ValueError("give either discount_bps or a fixed monthly price, not both and not neither")
        return self


class ProjectPriceUpdate(BaseModel):
    """A new discount or fixed price for an existing project price (replaces the old kind)."""

    discount_bps: Bps | None = None
    monthly_price_cents: MinorAmount | None = None
    monthly_price: MajorAmount | None = None
    note: str | None = Field(default=None, max_length=500)

    _decimal = field_validator("monthly_price", mode="before")(strict_decimal)

    @model_validator(mode="after")
    def _at_most_one_kind(self) -> ProjectPriceUpdate:
        self.monthly_price_cents = usd_minor(self.monthly_price_cents, self.monthly_price, "monthly_price",
                                              required=False)
        self.monthly_price = None
        if self.discount_bps is not None and self.monthly_price_cents is not None:
            raise ValueError("give either discount_bps or a fixed monthly price, not both")
        return self


class ProjectPriceRead(BaseModel):
    """A project's own price of a plan."""

    id: int
    project_id: int
    plan_id: int
    plan_code: str
    kind: OverrideKind
    discount_bps: int | None
    monthly_price_cents: int | None
    note: str
    created_at: datetime


# ---- pricing -------------------------------------------------------------------------------------

class PriceOverride(BaseModel):
    """The project price that was applied, in USD cents."""

    model_config = ConfigDict(frozen=True)

    kind: OverrideKind
    discount_bps: int | None
    monthly_price_cents: int | None


class Price(BaseModel):
    """The price of one plan for one billing cycle in one currency, with how it was reached.

    `amount` is what one cycle costs, in minor units of `currency`, after the project's price and
    the cycle discount: USD cents are worked out first (`amount_usd`), then converted once through
    the stored `rate` (1 USD = rate units) and rounded half-up to the currency's minor unit.
    `monthly` is the monthly price after the project's price but before any cycle discount: the
    base of hourly billing and proration.
    """

    model_config = ConfigDict(frozen=True)

    plan_id: int
    plan_code: str
    cycle: str
    months: int
    currency: str
    amount: int
    monthly: int
    list_monthly: int
    cycle_discount_bps: int
    override: PriceOverride | None
    amount_usd: int
    monthly_usd: int
    rate: Decimal
    rate_fetched_at: datetime | None

    @property
    def total(self) -> money.Money:
        """One cycle's amount as Money."""
        return money.Money(self.amount, self.currency)

    @property
    def monthly_money(self) -> money.Money:
        """The monthly price as Money."""
        return money.Money(self.monthly, self.currency)

    @property
    def hourly_rate(self) -> str:
        """The hourly price shown to 4 places ("0.0082")."""
        return money.format_hourly(self.monthly, self.currency)

    def hourly_charge(self, hour: int) -> int:
        """The charge in minor units for the `hour`-th started hour (1-based) of hourly billing."""
        return money.hourly_charge(self.monthly, hour)

    def hourly_cumulative(self, hours: int) -> int:
        """What `hours` started hours cost in all, never more than `monthly`."""
        return money.hourly_cumulative(self.monthly, hours)


class PlanOffer(BaseModel):
    """A plan with its price for every active billing cycle, in one currency."""

    plan: PlanRead
    prices: list[Price]
    personalised: bool
    monthly: int  # minor units of the offer's currency, after the project's own price
    list_monthly: int  # minor units of the offer's currency, the list price


class CategoryOffer(BaseModel):
    """A plan category and its active plans."""

    category: CategoryRead
    plans: list[PlanOffer]


class Offers(BaseModel):
    """The whole price list in one currency, personalised for a project or not."""

    currency: str
    rate: RateRead
    project_id: int | None
    categories: list[CategoryOffer]
