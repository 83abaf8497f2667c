"""The primary surface's catalogue bodies (the Evorxa reference names them; it gives no example).

Money is shown twice: `*_cents`, an integer of the currency's minor units (Evorxa's `balance_cents`
convention, whatever the currency), and a decimal string of major units ("6.00").
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, PlainSerializer

from cloudlet.billing.schemas import Offers, PlanOffer, Price, RateRead
from cloudlet.catalog.schemas import (
    CycleRead,
    RegionRead,
    TemplateGroup,
    TemplateRead,
)
from cloudlet.kit import money

# A JSON number for display (rates, GB); calculations never see it.
Number = Annotated[Decimal, PlainSerializer(lambda d: int(d) if d == d.to_integral_value() else float(d),
                                            return_type=float | int, when_used="json")]


class CyclePriceRead(BaseModel):
    """One billing cycle of a package: what it costs and the discount in it."""

    cycle: str
    months: int
    discount_bps: int
    discount_percent: Number
    price_cents: int
    price: str
    monthly_equivalent: str  # price / months, rounded half-up

    @classmethod
    def of(cls, p: Price) -> CyclePriceRead:
        """Render one Price."""
        per_month = money.div_half_up(p.amount, p.months)
        return cls(cycle=p.cycle, months=p.months, discount_bps=p.cycle_discount_bps,
                   discount_percent=(Decimal(p.cycle_discount_bps) / 100).normalize(), price_cents=p.amount,
                   price=money.format_amount(p.amount, p.currency),
                   monthly_equivalent=money.format_amount(per_month, p.currency))


class PackageRead(BaseModel):
    """A plan package as a customer orders it (`id` is the package_id of POST /api/instances)."""

    id: int
    plan: str
    name: str
    category: str
    vcpu: int
    ram: Number  # GB
    ram_mb: int
    storage: int  # GB
    bandwidth_gb: int
    bandwidth_mbit: int | None  # an extension: the server's network cap each way (null: none)
    regions: list[str]
    monthly_price_cents: int
    monthly_price: str
    hourly_price: str
    list_monthly_price_cents: int
    personalised: bool
    pricing: dict[str, CyclePriceRead]

    @classmethod
    def of(cls, offer: PlanOffer, currency: str) -> PackageRead:
        """Render a plan and its prices."""
        plan = offer.plan
        monthly_cents, list_cents = offer.monthly, offer.list_monthly
        return cls(id=plan.id, plan=plan.code, name=plan.name, category=plan.category, vcpu=plan.vcpu,
                   ram=(Decimal(plan.ram_mb) / 1024).normalize(), ram_mb=plan.ram_mb, storage=plan.disk_gb,
                   bandwidth_gb=plan.bandwidth_gb, bandwidth_mbit=plan.bandwidth_mbit, regions=plan.regions,
                   monthly_price_cents=monthly_cents,
                   monthly_price=money.format_amount(monthly_cents, currency),
                   hourly_price=money.format_hourly(monthly_cents, currency),
                   list_monthly_price_cents=list_cents, personalised=offer.personalised,
                   pricing={p.cycle: CyclePriceRead.of(p) for p in offer.prices})


class CategoryPackagesRead(BaseModel):
    """A plan category ("standard", "cpu-optimized") and its packages."""

    id: int
    code: str
    name: str
    description: str
    packages: list[PackageRead]


class CatalogPlansRead(BaseModel):
    """GET /api/catalog/plans and /api/me/catalog/plans."""

    currency: str
    exchange_rate: Number
    rate_fetched_at: datetime | None
    project_id: int | None
    categories: list[CategoryPackagesRead]

    @classmethod
    def of(cls, offers: Offers) -> CatalogPlansRead:
        """Render the price list."""
        return cls(
            currency=offers.currency, exchange_rate=offers.rate.rate, rate_fetched_at=offers.rate.fetched_at,
            project_id=offers.project_id,
            categories=[CategoryPackagesRead(id=c.category.id, code=c.category.code, name=c.category.name,
                                             description=c.category.description,
                                             packages=[PackageRead.of(o, offers.currency) for o in c.plans])
                        for c in offers.categories])


class RegionBrief(BaseModel):
    """A region: code, name, flag."""

    code: str
    name: str
    country: str
    flag: str
    is_available: bool

    @classmethod
    def of(cls, region: RegionRead) -> RegionBrief:
        """Render a region."""
        return cls(code=region.code, name=region.name, country=region.country, flag=region.flag,
                   is_available=region.is_available)


class BillingCycleBrief(BaseModel):
    """A billing cycle and its discount."""

    code: str
    name: str
    months: int
    discount_bps: int
    discount_percent: Number

    @classmethod
    def of(cls, cycle: CycleRead) -> BillingCycleBrief:
        """Render a billing cycle."""
        return cls(code=cycle.code, name=cycle.name, months=cycle.months, discount_bps=cycle.discount_bps,
                   discount_percent=cycle.discount_percent)


class CurrencyRate(BaseModel):
    """One currency's rate: units per US dollar."""

    currency: str
    rate: Number
    minor_units: int
    fetched_at: datetime | None


class ExchangeRatesRead(BaseModel):
    """Rates against USD; `fetched_at` is the oldest of them (every rate is at least that fresh)."""

    base: str
    rates: dict[str, Number]
    fetched_at: datetime | None
    currencies: list[CurrencyRate]

    @classmethod
    def of(cls, rates: list[RateRead]) -> ExchangeRatesRead:
        """Render the stored rates."""
        times = [r.fetched_at for r in rates if r.fetched_at is not None]
        return cls(base=money.BASE_CURRENCY, rates={r.currency: r.rate for r in rates},
                   fetched_at=min(times) if times else None,
                   currencies=[CurrencyRate(currency=r.currency, rate=r.rate, minor_units=r.minor_units,
                                            fetched_at=r.fetched_at) for r in rates])


class TemplateVariant(BaseModel):
    """One template of an OS group (`id` is the os_template_id of POST /api/instances)."""

    id: int
    code: str
    name: str
    os: str
    version: str
    is_windows: bool
    min_balance_cents: int
    min_balance: str
    description: str

    @classmethod
    def of(cls, t: TemplateRead) -> TemplateVariant:
        """Render a template."""
        return cls(id=t.id, code=t.code, name=t.name, os=t.os or t.name, version=t.version, is_windows=t.is_windows,
                   min_balance_cents=t.min_balance_cents, min_balance=t.min_balance, description=t.description)


class OsGroupRead(BaseModel):
    """An OS family and its template variants."""

    group: str
    name: str
    templates: list[TemplateVariant]

    @classmethod
    def of(cls, group: TemplateGroup) -> OsGroupRead:
        """Render a group."""
        return cls(group=group.family, name=group.name, templates=[TemplateVariant.of(t) for t in group.templates])
