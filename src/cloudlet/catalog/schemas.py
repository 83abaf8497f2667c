"""What the catalogue service takes and gives back, in no surface's dialect.

Prices travel as ints of minor units. Where an operator types a price, a decimal string of major
units ("6.00") is accepted as well and turned into minor units exactly (never through a float).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cloudlet.kit import money
from cloudlet.kit.ids import MAX_ID, Int32

Code = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9._-]*$",
                            description="Lower-case letters, digits, dots, dashes and underscores.")]
Currency = Annotated[str, Field(min_length=3, max_length=3, pattern=r"^[A-Za-z]{3}$")]
Bps = Annotated[int, Field(ge=0, le=money.BPS, description="Basis points: 1000 = 10%.")]
MinorAmount = Annotated[int, Field(ge=0, le=10**15, description="Minor units of USD (cents).")]
MAX_BANDWIDTH_MBIT = 1_000_000  # as drivers.base allows: past any NIC, within libvirt's 32-bit kilobytes per second
MajorAmount = Annotated[Decimal, Field(ge=0, le=10**13, description='Major units of USD as a string, e.g. "6.00".')]


def usd_minor(cents: int | None, major: Decimal | None, field: str, *, required: bool) -> int | None:
    """One USD price given as whole cents or as a decimal string of dollars, in cents (ValueError if both differ)."""
    if cents is not None and major is not None and money.to_minor(major, "USD", strict=True) != cents:
        raise ValueError(f"give {field}_cents or {field}, not two different prices")
    if cents is not None:
        return cents
    if major is not None:
        return money.to_minor(major, "USD", strict=True)
    if required:
        raise ValueError(f"{field}_cents (an integer of cents) or {field} (a decimal string) is required")
    return None


def strict_decimal(value: Any) -> Any:
    """Refuse a float where money is expected: a JSON float has already lost exactness."""
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
    sort_order: Int32 = 0

    _country = field_validator("country", mode="before")(_upper)


class RegionUpdate(BaseModel):
    """Changes to a region; only the fields sent are applied."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    country: str | None = Field(default=None, min_length=2, max_length=2, pattern=r"^[A-Za-z]{2}$")
    flag: str | None = Field(default=None, max_length=16)
    is_available: bool | None = None
    sort_order: Int32 | None = None

    _country = field_validator("country", mode="before")(_upper)


class RegionRead(BaseModel):
    """A region; `available_ips` (public IPv4 addresses it can still hand out) is filled by the networking
    service, which owns the addresses, and is 0 in what the catalogue alone returns."""

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
    sort_order: Int32 = 0


class CategoryUpdate(BaseModel):
    """Changes to a plan category."""

    name: str | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=500)
    sort_order: Int32 | None = None


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
    bandwidth_mbit: int | None = Field(default=None, ge=1, le=MAX_BANDWIDTH_MBIT,
                                       description="The server's network cap each way in Mbit/s; null: none.")
    monthly_price_cents: MinorAmount | None = None
    monthly_price: MajorAmount | None = None
    is_active: bool = True
    regions: list[Code] = Field(default_factory=list, description="Region codes; empty means every region.")
    sort_order: Int32 = 0

    _decimal = field_validator("monthly_price", mode="before")(strict_decimal)

    @model_validator(mode="after")
    def _one_price(self) -> PlanCreate:
        self.monthly_price_cents = usd_minor(self.monthly_price_cents, self.monthly_price, "monthly_price",
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
    bandwidth_mbit: int | None = Field(default=None, ge=1, le=MAX_BANDWIDTH_MBIT,
                                       description="The network cap in Mbit/s; null lifts it.")
    monthly_price_cents: MinorAmount | None = None
    monthly_price: MajorAmount | None = None
    is_active: bool | None = None
    regions: list[Code] | None = None
    sort_order: Int32 | None = None

    _decimal = field_validator("monthly_price", mode="before")(strict_decimal)

    @model_validator(mode="after")
    def _one_price(self) -> PlanUpdate:
        cents = usd_minor(self.monthly_price_cents, self.monthly_price, "monthly_price", required=False)
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
    bandwidth_mbit: int | None = None
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
    sort_order: Int32 = 0


class CycleUpdate(BaseModel):
    """Changes to a billing cycle."""

    name: str | None = Field(default=None, min_length=1, max_length=100)
    months: int | None = Field(default=None, ge=1, le=120)
    discount_bps: Bps | None = None
    is_active: bool | None = None
    sort_order: Int32 | None = None


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
    min_ram_mb: int = Field(default=0, ge=0, le=MAX_ID)
    min_disk_gb: int = Field(default=0, ge=0, le=MAX_ID)
    description: str = Field(default="", max_length=2000)
    image_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    is_active: bool = True
    sort_order: Int32 = 0

    _decimal = field_validator("min_balance", mode="before")(strict_decimal)

    @model_validator(mode="after")
    def _one_amount(self) -> TemplateCreate:
        self.min_balance_cents = usd_minor(self.min_balance_cents, self.min_balance, "min_balance",
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
    min_ram_mb: int | None = Field(default=None, ge=0, le=MAX_ID)
    min_disk_gb: int | None = Field(default=None, ge=0, le=MAX_ID)
    description: str | None = Field(default=None, max_length=2000)
    image_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    is_active: bool | None = None
    sort_order: Int32 | None = None

    _decimal = field_validator("min_balance", mode="before")(strict_decimal)

    @model_validator(mode="after")
    def _one_amount(self) -> TemplateUpdate:
        cents = usd_minor(self.min_balance_cents, self.min_balance, "min_balance", required=False)
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


# ---- a catalogue file ----------------------------------------------------------------------------

class PlanEntry(PlanCreate):
    """A plan in a catalogue file."""


class CatalogueFile(BaseModel):
    """A catalogue to load: every section optional; each entry is upserted by its code.

    The whole file (with billing's exchange rates and networking's IP pools) is cloudlet.catalogue_file's.
    """

    model_config = ConfigDict(extra="forbid")

    regions: list[RegionCreate] = Field(default_factory=list)
    categories: list[CategoryCreate] = Field(default_factory=list)
    plans: list[PlanEntry] = Field(default_factory=list)
    cycles: list[CycleCreate] = Field(default_factory=list)
    templates: list[TemplateCreate] = Field(default_factory=list)


class LoadReport(BaseModel):
    """What loading a catalogue file did, per section: how many entries were created and updated."""

    created: dict[str, int]
    updated: dict[str, int]
