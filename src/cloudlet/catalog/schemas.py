"""What the catalogue service takes and gives back, in no surface's dialect.

Prices travel as ints of minor units. Where an operator types a price, a decimal string of major
units ("6.00") is accepted as well and turned into minor units exactly (never through a float).
"""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cloudlet.kit import money

Code = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9._-]*$",
                            description="Lower-case letters, digits, dots, dashes and underscores.")]
Currency = Annotated[str, Field(min_length=3, max_length=3, pattern=r"^[A-Za-z]{3}$")]
Bps = Annotated[int, Field(ge=0, le=money.BPS, description="Basis points: 1000 = 10%.")]
MinorAmount = Annotated[int, Field(ge=0, le=10**15, description="Minor units of USD (cents).")]
MajorAmount = Annotated[Decimal, Field(ge=0, le=10**13, description='Major units of USD as a string, e.g. "6.00".')]


def _usd_minor(cents: int | None, major: Decimal | None, field: str, *, required: bool) -> int | None:
    # Two spellings of one price: whole cents, or a decimal string of dollars.
    if cents is not None and major is not None and money.to_minor(major, "USD", strict=True) != cents:
        raise ValueError(f"give {field}_cents or {field}, not two different prices")
    if cents is not None:
        return cents
    if major is not None:
        return money.to_minor(major, "USD", strict=True)
    if required:
        raise ValueError(f"{field}_cents (an integer of cents) or {field} (a decimal string) is required")
    return None


def _strict_decimal(value: Any) -> Any:
    # A JSON float has already lost exactness; only strings and integers are taken as money.
    if isinstance(value, float):
        raise ValueError('give the amount as a decimal string, e.g. "6.00"')
    return value


def _upper(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


# ---- regions -------------------------------------------------------------------------------------

class RegionCreate(BaseModel):
    """A new region."""

    code: Code
    name: str = Field(min_length=1, max_length=200)
    country: str = Field(min_length=2, max_length=2, pattern=r"^[A-Za-z]{2}$")
    flag: str = Field(default="", max_length=16)
    is_available: bool = True
    sort_order: int = 0

    _country = field_validator("country", mode="before")(_upper)


class RegionUpdate(BaseModel):
    """Changes to a region; only the fields sent are applied."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    country: str | None = Field(default=None, min_length=2, max_length=2, pattern=r"^[A-Za-z]{2}$")
    flag: str | None = Field(default=None, max_length=16)
    is_available: bool | None = None
    sort_order: int | None = None

    _country = field_validator("country", mode="before")(_upper)


class RegionRead(BaseModel):
    """A region with how many public IPv4 addresses it can still hand out."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    code: str
    name: str
    country: str
    flag: str
    is_available: bool
    sort_order: int
    available_ips: int = 0


# ---- plan categories -----------------------------------------------------------------------------

class CategoryCreate(BaseModel):
    """A new plan category."""

    code: Code
    name: str = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=500)
    sort_order: int = 0


class CategoryUpdate(BaseModel):
    """Changes to a plan category."""

    name: str | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=500)
    sort_order: int | None = None


class CategoryRead(BaseModel):
    """A plan category."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    code: str
    name: str
    description: str
    sort_order: int


# ---- plans ---------------------------------------------------------------------------------------

class PlanCreate(BaseModel):
    """A new plan. The price is monthly, in USD: `monthly_price_cents` or `monthly_price` ("6.00")."""

    code: Code
    name: str = Field(min_length=1, max_length=200)
    category: Code = "standard"
    vcpu: int = Field(ge=1, le=1024)
    ram_mb: int = Field(ge=64, le=16 * 1024 * 1024)
    disk_gb: int = Field(ge=1, le=1024 * 1024)
    bandwidth_gb: int = Field(default=0, ge=0, le=10**9)
    monthly_price_cents: MinorAmount | None = None
    monthly_price: MajorAmount | None = None
    is_active: bool = True
    regions: list[Code] = Field(default_factory=list, description="Region codes; empty means every region.")
    sort_order: int = 0

    _decimal = field_validator("monthly_price", mode="before")(_strict_decimal)

    @model_validator(mode="after")
    def _one_price(self) -> PlanCreate:
        self.monthly_price_cents = _usd_minor(self.monthly_price_cents, self.monthly_price, "monthly_price",
                                              required=True)
        self.monthly_price = None
        return self


class PlanUpdate(BaseModel):
    """Changes to a plan; `regions`, when sent, replaces the list."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    category: Code | None = None
    vcpu: int | None = Field(default=None, ge=1, le=1024)
    ram_mb: int | None = Field(default=None, ge=64, le=16 * 1024 * 1024)
    disk_gb: int | None = Field(default=None, ge=1, le=1024 * 1024)
    bandwidth_gb: int | None = Field(default=None, ge=0, le=10**9)
    monthly_price_cents: MinorAmount | None = None
    monthly_price: MajorAmount | None = None
    is_active: bool | None = None
    regions: list[Code] | None = None
    sort_order: int | None = None

    _decimal = field_validator("monthly_price", mode="before")(_strict_decimal)

    @model_validator(mode="after")
    def _one_price(self) -> PlanUpdate:
        cents = _usd_minor(self.monthly_price_cents, self.monthly_price, "monthly_price", required=False)
        if cents is not None:
            self.monthly_price_cents = cents
        self.monthly_price = None
        return self


class PlanRead(BaseModel):
    """A plan as the catalogue stores it: list price in USD cents."""

    id: int
    code: str
    name: str
    category: str
    vcpu: int
    ram_mb: int
    disk_gb: int
    bandwidth_gb: int
    monthly_price_cents: int
    monthly_price: str  # "6.00", USD
    hourly_price: str  # "0.0082", USD
    is_active: bool
    regions: list[str]
    sort_order: int


# ---- billing cycles ------------------------------------------------------------------------------

class CycleCreate(BaseModel):
    """A new billing cycle."""

    code: Code
    name: str = Field(min_length=1, max_length=100)
    months: int = Field(ge=1, le=120)
    discount_bps: Bps = 0
    is_active: bool = True
    sort_order: int = 0


class CycleUpdate(BaseModel):
    """Changes to a billing cycle."""

    name: str | None = Field(default=None, min_length=1, max_length=100)
    months: int | None = Field(default=None, ge=1, le=120)
    discount_bps: Bps | None = None
    is_active: bool | None = None
    sort_order: int | None = None


class CycleRead(BaseModel):
    """A billing cycle and its discount."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    code: str
    name: str
    months: int
    discount_bps: int
    is_active: bool
    sort_order: int

    @property
    def discount_percent(self) -> Decimal:
        """The discount as a percentage (1250 bps -> 12.5)."""
        return (Decimal(self.discount_bps) / 100).normalize()


# ---- exchange rates ------------------------------------------------------------------------------

class RateSet(BaseModel):
    """A rate to store for a currency: how many units one US dollar buys."""

    rate: Decimal = Field(gt=0, le=10**9, max_digits=20, decimal_places=8)
    source: str = Field(default="manual", max_length=200)
    fetched_at: datetime | None = None  # when it was learnt; now if not given

    _decimal = field_validator("rate", mode="before")(_strict_decimal)


class RateRead(BaseModel):
    """A stored exchange rate. USD, the base, is 1 and has no fetched_at."""

    currency: str
    rate: Decimal
    minor_units: int
    source: str
    fetched_at: datetime | None


# ---- OS templates --------------------------------------------------------------------------------

class TemplateCreate(BaseModel):
    """A new OS template. `min_balance` is in USD (cents or a decimal string) and checked at order."""

    code: Code
    family: Code
    name: str = Field(min_length=1, max_length=200)
    os: str = Field(default="", max_length=200)
    version: str = Field(default="", max_length=32)
    is_windows: bool = False
    min_balance_cents: MinorAmount | None = None
    min_balance: MajorAmount | None = None
    min_ram_mb: int = Field(default=0, ge=0)
    min_disk_gb: int = Field(default=0, ge=0)
    description: str = Field(default="", max_length=2000)
    image_id: int | None = Field(default=None, ge=1)
    is_active: bool = True
    sort_order: int = 0

    _decimal = field_validator("min_balance", mode="before")(_strict_decimal)

    @model_validator(mode="after")
    def _one_amount(self) -> TemplateCreate:
        self.min_balance_cents = _usd_minor(self.min_balance_cents, self.min_balance, "min_balance",
                                            required=False) or 0
        self.min_balance = None
        return self


class TemplateUpdate(BaseModel):
    """Changes to an OS template."""

    family: Code | None = None
    name: str | None = Field(default=None, min_length=1, max_length=200)
    os: str | None = Field(default=None, max_length=200)
    version: str | None = Field(default=None, max_length=32)
    is_windows: bool | None = None
    min_balance_cents: MinorAmount | None = None
    min_balance: MajorAmount | None = None
    min_ram_mb: int | None = Field(default=None, ge=0)
    min_disk_gb: int | None = Field(default=None, ge=0)
    description: str | None = Field(default=None, max_length=2000)
    image_id: int | None = Field(default=None, ge=1)
    is_active: bool | None = None
    sort_order: int | None = None

    _decimal = field_validator("min_balance", mode="before")(_strict_decimal)

    @model_validator(mode="after")
    def _one_amount(self) -> TemplateUpdate:
        cents = _usd_minor(self.min_balance_cents, self.min_balance, "min_balance", required=False)
        if cents is not None:
            self.min_balance_cents = cents
        self.min_balance = None
        return self


class TemplateRead(BaseModel):
    """An OS template."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    code: str
    family: str
    name: str
    os: str
    version: str
    is_windows: bool
    min_balance_cents: int
    min_balance: str  # USD, "20.00"
    min_ram_mb: int
    min_disk_gb: int
    description: str
    image_id: int | None
    is_active: bool
    sort_order: int


class TemplateGroup(BaseModel):
    """The templates of one OS family, newest version first."""

    family: str
    name: str
    templates: list[TemplateRead]


# ---- per-project prices --------------------------------------------------------------------------

class OverrideKind(enum.StrEnum):
    """How a project's price of a plan differs from the list price."""

    DISCOUNT = "discount"
    FIXED = "fixed"


class ProjectPriceCreate(BaseModel):
    """A project's own price of a plan: `discount_bps`, or a fixed monthly USD price."""

    project_id: int = Field(ge=1)
    plan_id: int = Field(ge=1)
    discount_bps: Bps | None = None
    monthly_price_cents: MinorAmount | None = None
    monthly_price: MajorAmount | None = None
    note: str = Field(default="", max_length=500)

    _decimal = field_validator("monthly_price", mode="before")(_strict_decimal)

    @model_validator(mode="after")
    def _one_kind(self) -> ProjectPriceCreate:
        self.monthly_price_cents = _usd_minor(self.monthly_price_cents, self.monthly_price, "monthly_price",
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

    _decimal = field_validator("monthly_price", mode="before")(_strict_decimal)

    @model_validator(mode="after")
    def _at_most_one_kind(self) -> ProjectPriceUpdate:
        self.monthly_price_cents = _usd_minor(self.monthly_price_cents, self.monthly_price, "monthly_price",
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


# ---- IP pools ------------------------------------------------------------------------------------

class IpPoolCreate(BaseModel):
    """A block of addresses in a region. `reserved` lists addresses or CIDRs inside it never to hand out."""

    region: Code
    cidr: str = Field(min_length=3, max_length=64, examples=["203.0.113.0/24"])
    name: str = Field(default="", max_length=200)
    gateway: str | None = Field(default=None, max_length=64)
    reserved: list[str] = Field(default_factory=list, max_length=1000)
    is_active: bool = True


class IpPoolUpdate(BaseModel):
    """Changes to a pool; the CIDR and region cannot change while addresses are allocated."""

    region: Code | None = None
    cidr: str | None = Field(default=None, min_length=3, max_length=64)
    name: str | None = Field(default=None, max_length=200)
    gateway: str | None = Field(default=None, max_length=64)
    reserved: list[str] | None = Field(default=None, max_length=1000)
    is_active: bool | None = None


class IpPoolRead(BaseModel):
    """A pool and its address counts: usable = size less network/broadcast; available = usable
    less gateway, reserved and allocated."""

    id: int
    region: str
    name: str
    cidr: str
    version: int
    gateway: str | None
    reserved: list[str]
    is_active: bool
    usable: int
    reserved_count: int
    allocated: int
    available: int


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


# ---- a catalogue file ----------------------------------------------------------------------------

class PlanEntry(PlanCreate):
    """A plan in a catalogue file."""


class PoolEntry(IpPoolCreate):
    """An IP pool in a catalogue file (matched by its CIDR)."""


class CatalogueFile(BaseModel):
    """A catalogue to load: every section optional; each entry is upserted by its code (pools by CIDR)."""

    model_config = ConfigDict(extra="forbid")

    regions: list[RegionCreate] = Field(default_factory=list)
    categories: list[CategoryCreate] = Field(default_factory=list)
    plans: list[PlanEntry] = Field(default_factory=list)
    cycles: list[CycleCreate] = Field(default_factory=list)
    rates: dict[Currency, Decimal] = Field(default_factory=dict)
    templates: list[TemplateCreate] = Field(default_factory=list)
    pools: list[PoolEntry] = Field(default_factory=list)


class LoadReport(BaseModel):
    """What loading a catalogue file did, per section: how many entries were created and updated."""

    created: dict[str, int]
    updated: dict[str, int]
