"""The catalogue: what can be bought, where, with which OS, and at what price.

Pricing API (what billing and instances call):

    price(session, plan, cycle, currency="USD", project_id=None) -> Price
        One cycle of a plan in a currency; `plan` is a Plan, its id or its code, `cycle` a
        BillingCycle or its code. Raises NotFound (plan, cycle) or Invalid (currency without a rate).
    offers(session, currency="USD", project_id=None) -> Offers
        Every active plan with a Price per active cycle, by category.
    quote(plan, cycle, rate, override) -> Price
        The same arithmetic on rows already loaded (no queries).
    rate(session, currency) -> RateRead
        The stored rate of a currency (USD is 1).
    template_for_plan(session, template_id, plan) -> TemplateRead
        An OS template that can be built on the plan (NotFound / Invalid otherwise).
    require_balance_for_template(session, template_id, balance: Money) -> None
        PaymentRequired when the balance is under the template's minimum (Windows: $20).
    money.hourly_charge(price.monthly, hour) / Price.hourly_charge(hour)
        The charge of each started hour, never more than the monthly price in all.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import yaml
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloudlet.catalog import repository
from cloudlet.catalog.defaults import DEFAULT_CATALOGUE
from cloudlet.catalog.models import (
    BillingCycle,
    ExchangeRate,
    IpPool,
    OsTemplate,
    Plan,
    PlanCategory,
    ProjectPrice,
    Region,
)
from cloudlet.catalog.schemas import (
    CatalogueFile,
    CategoryCreate,
    CategoryOffer,
    CategoryRead,
    CategoryUpdate,
    CycleCreate,
    CycleRead,
    CycleUpdate,
    IpPoolCreate,
    IpPoolRead,
    IpPoolUpdate,
    LoadReport,
    Offers,
    OverrideKind,
    PlanCreate,
    PlanOffer,
    PlanRead,
    PlanUpdate,
    Price,
    PriceOverride,
    ProjectPriceCreate,
    ProjectPriceRead,
    ProjectPriceUpdate,
    RateRead,
    RateSet,
    RegionCreate,
    RegionRead,
    RegionUpdate,
    TemplateCreate,
    TemplateGroup,
    TemplateRead,
    TemplateUpdate,
)
from cloudlet.kit import clock, money
from cloudlet.kit.errors import Conflict, Invalid, NotFound, PaymentRequired
from cloudlet.projects import service as projects
from cloudlet.projects.schemas import Actor

BASE = money.BASE_CURRENCY
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


# ---- regions -------------------------------------------------------------------------------------

def _region_read(region: Region, available_ips: int) -> RegionRead:
    read = RegionRead.model_validate(region)
    read.available_ips = available_ips
    return read


def list_regions(session: Session, *, available_only: bool = False) -> list[RegionRead]:
    """Regions in display order, each with the IPv4 addresses it can still hand out."""
    free = _available_by_region(session)
    return [_region_read(r, free.get(r.id, 0)) for r in repository.regions(session, available_only=available_only)]


def _region(session: Session, region_id: int) -> Region:
    region = repository.get(session, Region, region_id)
    if region is None:
        raise NotFound("region", region_id)
    return region


def _region_by_code(session: Session, code: str, field: str = "region") -> Region:
    region = repository.region_by_code(session, code)
    if region is None:
        raise Invalid(field, f"There is no region {code!r}.", code="LOCATION_NOT_FOUND")
    return region


def get_region(session: Session, region_id: int) -> RegionRead:
    """One region."""
    region = _region(session, region_id)
    return _region_read(region, _available_by_region(session).get(region.id, 0))


def create_region(session: Session, data: RegionCreate) -> RegionRead:
    """Add a region; its code must be new."""
    if repository.region_by_code(session, data.code) is not None:
        raise Conflict(f"A region with code {data.code!r} already exists.")
    region = repository.insert(session, Region(**data.model_dump()))
    return _region_read(region, 0)


def update_region(session: Session, region_id: int, data: RegionUpdate) -> RegionRead:
    """Change a region's name, country, flag, availability or order."""
    region = _region(session, region_id)
    for key, value in data.model_dump(exclude_unset=True).items():
        if value is None:
            raise Invalid(key, f"The {key} field cannot be null.")
        setattr(region, key, value)
    repository.flush(session)
    return get_region(session, region.id)


def delete_region(session: Session, region_id: int) -> None:
    """Remove a region that has no IP pools left; plans simply stop being offered there."""
    region = _region(session, region_id)
    if repository.pools_in_region(session, region.id):
        raise Conflict("This region still has IP pools; delete them first or mark the region unavailable.")
    if not repository.delete_unreferenced(session, region):
        raise Conflict("This region still has nodes (or other objects) in it; move or delete them first, "
                       "or mark the region unavailable.")


# ---- plan categories -----------------------------------------------------------------------------

def list_categories(session: Session) -> list[CategoryRead]:
    """Plan categories in display order."""
    return [CategoryRead.model_validate(c) for c in repository.categories(session)]


def _category(session: Session, category_id: int) -> PlanCategory:
    category = repository.get(session, PlanCategory, category_id)
    if category is None:
        raise NotFound("plan category", category_id)
    return category


def _category_by_code(session: Session, code: str) -> PlanCategory:
    category = repository.category_by_code(session, code)
    if category is None:
        raise Invalid("category", f"There is no plan category {code!r}.")
    return category


def create_category(session: Session, data: CategoryCreate) -> CategoryRead:
    """Add a plan category; its code must be new."""
    if repository.category_by_code(session, data.code) is not None:
        raise Conflict(f"A plan category with code {data.code!r} already exists.")
    return CategoryRead.model_validate(repository.insert(session, PlanCategory(**data.model_dump())))


def update_category(session: Session, category_id: int, data: CategoryUpdate) -> CategoryRead:
    """Rename or reorder a plan category."""
    category = _category(session, category_id)
    for key, value in data.model_dump(exclude_unset=True).items():
        if value is None:
            raise Invalid(key, f"The {key} field cannot be null.")
        setattr(category, key, value)
    repository.flush(session)
    return CategoryRead.model_validate(category)


def delete_category(session: Session, category_id: int) -> None:
    """Remove an empty plan category."""
    category = _category(session, category_id)
    if repository.plans_in_category(session, category.id):
        raise Conflict("This category still has plans; move or delete them first.")
    repository.delete(session, category)


# ---- plans ---------------------------------------------------------------------------------------

def _plan_read(plan: Plan) -> PlanRead:
    return PlanRead(
        id=plan.id, code=plan.code, name=plan.name, category=plan.category.code, vcpu=plan.vcpu,
        ram_mb=plan.ram_mb, disk_gb=plan.disk_gb, bandwidth_gb=plan.bandwidth_gb,
        monthly_price_cents=plan.monthly_price, monthly_price=money.format_amount(plan.monthly_price, BASE),
        hourly_price=money.format_hourly(plan.monthly_price, BASE), is_active=plan.is_active,
        regions=[r.code for r in plan.regions], sort_order=plan.sort_order,
    )


def list_plans(session: Session, *, active_only: bool = False) -> list[PlanRead]:
    """Plans in display order, with list prices in USD."""
    return [_plan_read(p) for p in repository.plans(session, active_only=active_only)]


def _plan(session: Session, plan: Plan | int | str) -> Plan:
    if isinstance(plan, Plan):
        return plan
    found = repository.get(session, Plan, plan) if isinstance(plan, int) else repository.plan_by_code(session, plan)
    if found is None:
        raise NotFound("plan", plan, code="PLAN_NOT_FOUND")
    return found


def get_plan(session: Session, plan: int | str) -> PlanRead:
    """One plan, by id or code, active or not."""
    return _plan_read(_plan(session, plan))


def find_active_plan(session: Session, plan: int | str) -> PlanRead:
    """A plan that can be ordered now (by id or code); NotFound for an unknown or retired plan."""
    found = _plan(session, plan)
    if not found.is_active:
        raise NotFound("plan", plan, code="PLAN_NOT_FOUND")
    return _plan_read(found)


def _plan_regions(session: Session, codes: list[str]) -> list[Region]:
    if not codes:
        return repository.regions(session)  # no list means everywhere there is today
    found = repository.regions_by_codes(session, codes)
    missing = sorted(set(codes) - {r.code for r in found})
    if missing:
        raise Invalid("regions", f"There is no region {missing[0]!r}.", code="LOCATION_NOT_FOUND")
    return found


def create_plan(session: Session, data: PlanCreate) -> PlanRead:
    """Add a plan; its code must be new. No regions listed means every region."""
    if repository.plan_by_code(session, data.code) is not None:
        raise Conflict(f"A plan with code {data.code!r} already exists.")
    assert data.monthly_price_cents is not None  # the schema turned either spelling into cents  # noqa: S101
    plan = Plan(code=data.code, name=data.name, category=_category_by_code(session, data.category), vcpu=data.vcpu,
                ram_mb=data.ram_mb, disk_gb=data.disk_gb, bandwidth_gb=data.bandwidth_gb,
                monthly_price=data.monthly_price_cents, is_active=data.is_active, sort_order=data.sort_order,
                regions=_plan_regions(session, data.regions))
    return _plan_read(repository.insert(session, plan))


def update_plan(session: Session, plan_id: int, data: PlanUpdate) -> PlanRead:
    """Change a plan. A new price applies to new orders and renewals; instances keep what they paid."""
    plan = _plan(session, plan_id)
    for key, value in data.model_dump(exclude_unset=True, exclude={"monthly_price", "monthly_price_cents"}).items():
        if value is None:
            raise Invalid(key, f"The {key} field cannot be null.")
        if key == "category":
            plan.category = _category_by_code(session, value)
        elif key == "regions":
            plan.regions = _plan_regions(session, value)
        else:
            setattr(plan, key, value)
    if data.monthly_price_cents is not None:
        plan.monthly_price = data.monthly_price_cents
    repository.flush(session)
    return _plan_read(plan)


def delete_plan(session: Session, plan_id: int) -> None:
    """Remove a plan and the project prices of it.

    A plan that instances use must be deactivated instead; that check arrives with instances.
    """
    repository.delete(session, _plan(session, plan_id))


# ---- billing cycles ------------------------------------------------------------------------------

def list_cycles(session: Session, *, active_only: bool = False) -> list[CycleRead]:
    """Billing cycles, shortest first."""
    return [CycleRead.model_validate(c) for c in repository.cycles(session, active_only=active_only)]


def _cycle(session: Session, cycle: BillingCycle | int | str) -> BillingCycle:
    if isinstance(cycle, BillingCycle):
        return cycle
    found = (repository.get(session, BillingCycle, cycle) if isinstance(cycle, int)
             else repository.cycle_by_code(session, cycle))
    if found is None:
        raise NotFound("billing cycle", cycle)
    return found


def get_cycle(session: Session, cycle: int | str) -> CycleRead:
    """One billing cycle, by id or code."""
    return CycleRead.model_validate(_cycle(session, cycle))


def create_cycle(session: Session, data: CycleCreate) -> CycleRead:
    """Add a billing cycle; its code must be new."""
    if repository.cycle_by_code(session, data.code) is not None:
        raise Conflict(f"A billing cycle with code {data.code!r} already exists.")
    return CycleRead.model_validate(repository.insert(session, BillingCycle(**data.model_dump())))


def update_cycle(session: Session, cycle_id: int, data: CycleUpdate) -> CycleRead:
    """Change a billing cycle's name, length, discount or availability."""
    cycle = _cycle(session, cycle_id)
    for key, value in data.model_dump(exclude_unset=True).items():
        if value is None:
            raise Invalid(key, f"The {key} field cannot be null.")
        setattr(cycle, key, value)
    repository.flush(session)
    return CycleRead.model_validate(cycle)


def delete_cycle(session: Session, cycle_id: int) -> None:
    """Remove a billing cycle."""
    repository.delete(session, _cycle(session, cycle_id))


# ---- exchange rates ------------------------------------------------------------------------------

def _base_rate() -> RateRead:
    return RateRead(currency=BASE, rate=Decimal(1), minor_units=money.minor_units(BASE), source="base currency",
                    fetched_at=None)


def _rate_read(row: ExchangeRate) -> RateRead:
    return RateRead(currency=row.currency, rate=row.rate.normalize(), minor_units=money.minor_units(row.currency),
                    source=row.source, fetched_at=row.fetched_at)


def list_rates(session: Session) -> list[RateRead]:
    """USD (the base, 1) and every stored rate."""
    return [_base_rate(), *(_rate_read(r) for r in repository.rates(session) if r.currency != BASE)]


def rate(session: Session, currency: str) -> RateRead:
    """The rate prices in `currency` are converted with; Invalid (422) for a currency without one."""
    code = currency.strip().upper()
    if code == BASE:
        return _base_rate()
    row = repository.rate_of(session, code)
    if row is None:
        known = ", ".join(r.currency for r in list_rates(session))
        raise Invalid("currency", f"Prices are not quoted in {currency!r}; choose one of {known}.",
                      code="UNKNOWN_CURRENCY")
    return _rate_read(row)


def set_rate(session: Session, currency: str, data: RateSet) -> RateRead:
    """Store a currency's rate against USD (replacing the previous one) with when it was fetched."""
    code = money.normalize_currency(currency)
    if code == BASE:
        raise Invalid("currency", f"{BASE} is the base currency; its rate is always 1.")
    fetched_at = data.fetched_at or clock.now()
    if fetched_at.tzinfo is None:
        raise Invalid("fetched_at", "fetched_at needs a time zone (e.g. a trailing Z).")
    row = repository.rate_of(session, code)
    if row is None:
        row = repository.insert(session, ExchangeRate(currency=code, rate=data.rate, source=data.source,
                                                      fetched_at=fetched_at))
    else:
        row.rate, row.source, row.fetched_at = data.rate, data.source, fetched_at
        repository.flush(session)
    return _rate_read(row)


def delete_rate(session: Session, currency: str) -> None:
    """Stop quoting prices in a currency."""
    row = repository.rate_of(session, currency.strip().upper())
    if row is None:
        raise NotFound("exchange rate", currency)
    repository.delete(session, row)


# ---- OS templates --------------------------------------------------------------------------------

def _template_read(template: OsTemplate) -> TemplateRead:
    return TemplateRead(
        id=template.id, code=template.code, family=template.family, name=template.name, os=template.os,
        version=template.version, is_windows=template.is_windows, min_balance_cents=template.min_balance,
        min_balance=money.format_amount(template.min_balance, BASE), min_ram_mb=template.min_ram_mb,
        min_disk_gb=template.min_disk_gb, description=template.description, image_id=template.image_id,
        is_active=template.is_active, sort_order=template.sort_order,
    )


def list_templates(session: Session, *, active_only: bool = False) -> list[TemplateRead]:
    """OS templates in display order."""
    return [_template_read(t) for t in repository.templates(session, active_only=active_only)]


def _template(session: Session, template: int | str) -> OsTemplate:
    found = (repository.get(session, OsTemplate, template) if isinstance(template, int)
             else repository.template_by_code(session, template))
    if found is None:
        raise NotFound("OS template", template, code="INVALID_TEMPLATE")
    return found


def get_template(session: Session, template: int | str) -> TemplateRead:
    """One OS template by id or code."""
    return _template_read(_template(session, template))


def _fits(template: OsTemplate, plan: Plan) -> bool:
    return plan.ram_mb >= template.min_ram_mb and plan.disk_gb >= template.min_disk_gb


def _version_key(template: TemplateRead) -> tuple[int, list[int]]:
    digits = [int(part) for part in template.version.split(".") if part.isdigit()]
    return (template.sort_order, [-d for d in digits])


def templates_for_plan(session: Session, plan_id: int) -> list[TemplateGroup]:
    """The active templates a plan can be built with, grouped by OS family, newest version first."""
    plan = _plan(session, plan_id)
    if not plan.is_active:
        raise NotFound("plan", plan_id, code="PLAN_NOT_FOUND")
    groups: dict[str, list[TemplateRead]] = {}
    for template in repository.templates(session, active_only=True):
        if _fits(template, plan):
            groups.setdefault(template.family, []).append(_template_read(template))
    return [TemplateGroup(family=family, name=_family_name(family, items), templates=sorted(items, key=_version_key))
            for family, items in groups.items()]


def _family_name(family: str, items: list[TemplateRead]) -> str:
    # "Debian 12" -> "Debian": the common first word of the group's names, else the family code.
    first_words = {t.name.split(" ")[0] for t in items}
    return first_words.pop() if len(first_words) == 1 else family.replace("-", " ").title()


def template_for_plan(session: Session, template: int | str, plan: int | str) -> TemplateRead:
    """An active template that fits the plan; NotFound (unknown) or Invalid (too small a plan)."""
    found = _template(session, template)
    if not found.is_active:
        raise NotFound("OS template", template, code="INVALID_TEMPLATE")
    target = _plan(session, plan)
    if not _fits(found, target):
        raise Invalid("os_template_id", f"{found.name} needs at least {found.min_ram_mb} MB of RAM and "
                      f"{found.min_disk_gb} GB of disk; plan {target.code} is too small.", code="INVALID_TEMPLATE")
    return _template_read(found)


def require_balance_for_template(session: Session, template: int | str, balance: money.Money) -> None:
    """Refuse (PaymentRequired) an order whose balance is under the template's minimum."""
    found = _template(session, template)
    if found.min_balance <= 0:
        return
    needed = money.convert(found.min_balance, rate(session, balance.currency).rate, source=BASE,
                           target=balance.currency)
    if balance.amount < needed:
        raise PaymentRequired(f"{found.name} requires a balance of at least "
                              f"{money.format_amount(needed, balance.currency)} {balance.currency}.")


def create_template(session: Session, data: TemplateCreate) -> TemplateRead:
    """Add an OS template; its code must be new."""
    if repository.template_by_code(session, data.code) is not None:
        raise Conflict(f"An OS template with code {data.code!r} already exists.")
    fields = data.model_dump(exclude={"min_balance_cents", "min_balance"})
    template = OsTemplate(**fields, min_balance=data.min_balance_cents or 0)
    return _template_read(repository.insert(session, template))


def update_template(session: Session, template_id: int, data: TemplateUpdate) -> TemplateRead:
    """Change an OS template (image_id may be set to null)."""
    template = _template(session, template_id)
    for key, value in data.model_dump(exclude_unset=True, exclude={"min_balance"}).items():
        if key == "min_balance_cents":
            continue
        if value is None and key != "image_id":
            raise Invalid(key, f"The {key} field cannot be null.")
        setattr(template, key, value)
    if data.min_balance_cents is not None:
        template.min_balance = data.min_balance_cents
    repository.flush(session)
    return _template_read(template)


def delete_template(session: Session, template_id: int) -> None:
    """Remove an OS template."""
    repository.delete(session, _template(session, template_id))


# ---- per-project prices --------------------------------------------------------------------------

def _project_price_read(row: ProjectPrice, plan_code: str) -> ProjectPriceRead:
    kind = OverrideKind.FIXED if row.monthly_price is not None else OverrideKind.DISCOUNT
    return ProjectPriceRead(id=row.id, project_id=row.project_id, plan_id=row.plan_id, plan_code=plan_code,
                            kind=kind, discount_bps=row.discount_bps, monthly_price_cents=row.monthly_price,
                            note=row.note, created_at=row.created_at)


def list_project_prices(session: Session, project_id: int | None = None) -> list[ProjectPriceRead]:
    """Project prices, of one project or of all."""
    codes = {p.id: p.code for p in repository.plans(session)}
    return [_project_price_read(r, codes.get(r.plan_id, "")) for r in repository.project_prices(session, project_id)]


def _project_price(session: Session, price_id: int) -> ProjectPrice:
    row = repository.get(session, ProjectPrice, price_id)
    if row is None:
        raise NotFound("project price", price_id)
    return row


def create_project_price(session: Session, data: ProjectPriceCreate) -> ProjectPriceRead:
    """Give a project its own price of a plan (one per project and plan)."""
    plan = _plan(session, data.plan_id)
    if repository.project_price(session, data.project_id, plan.id) is not None:
        raise Conflict("This project already has its own price of this plan; change that one instead.")
    row = ProjectPrice(project_id=data.project_id, plan_id=plan.id, discount_bps=data.discount_bps,
                       monthly_price=data.monthly_price_cents, note=data.note)
    try:
        with session.begin_nested():  # a missing project fails the foreign key; keep the transaction usable
            repository.insert(session, row)
    except IntegrityError:
        raise NotFound("project", data.project_id) from None
    return _project_price_read(row, plan.code)


def update_project_price(session: Session, price_id: int, data: ProjectPriceUpdate) -> ProjectPriceRead:
    """Switch a project price to a new discount or fixed price, or change its note."""
    row = _project_price(session, price_id)
    if data.discount_bps is not None:
        row.discount_bps, row.monthly_price = data.discount_bps, None
    elif data.monthly_price_cents is not None:
        row.discount_bps, row.monthly_price = None, data.monthly_price_cents
    if data.note is not None:
        row.note = data.note
    repository.flush(session)
    return _project_price_read(row, _plan(session, row.plan_id).code)


def delete_project_price(session: Session, price_id: int) -> None:
    """Return a project to the list price of a plan."""
    repository.delete(session, _project_price(session, price_id))


# ---- pricing -------------------------------------------------------------------------------------

def _override(row: ProjectPrice | None) -> PriceOverride | None:
    if row is None:
        return None
    if row.monthly_price is not None:
        return PriceOverride(kind=OverrideKind.FIXED, discount_bps=None, monthly_price_cents=row.monthly_price)
    return PriceOverride(kind=OverrideKind.DISCOUNT, discount_bps=row.discount_bps, monthly_price_cents=None)


def _monthly_usd(list_price: int, override: PriceOverride | None) -> int:
    if override is None:
        return list_price
    if override.kind is OverrideKind.FIXED:
        assert override.monthly_price_cents is not None  # noqa: S101  # the table's check holds
        return override.monthly_price_cents
    return money.apply_discount(list_price, override.discount_bps or 0)


def quote(plan: Plan, cycle: BillingCycle, conversion: RateRead, override: PriceOverride | None) -> Price:
    """Price one cycle of a plan from loaded rows (no queries): USD first, then one conversion."""
    monthly_usd = _monthly_usd(plan.monthly_price, override)
    amount_usd = money.apply_discount(monthly_usd * cycle.months, cycle.discount_bps)
    currency = conversion.currency

    def convert(amount: int) -> int:
        return money.convert(amount, conversion.rate, source=BASE, target=currency)

    return Price(plan_id=plan.id, plan_code=plan.code, cycle=cycle.code, months=cycle.months, currency=currency,
                 amount=convert(amount_usd), monthly=convert(monthly_usd), list_monthly=convert(plan.monthly_price),
                 cycle_discount_bps=cycle.discount_bps, override=override, amount_usd=amount_usd,
                 monthly_usd=monthly_usd, rate=conversion.rate, rate_fetched_at=conversion.fetched_at)


def price(session: Session, plan: Plan | int | str, cycle: BillingCycle | int | str, currency: str = BASE,
          project_id: int | None = None) -> Price:
    """The price of one cycle of a plan in a currency, with the project's own price applied.

    Raises NotFound for an unknown plan or cycle and Invalid for a currency without a stored rate.
    Retired plans and cycles are still priced (renewals of what was sold); ordering checks that they
    are active.
    """
    found = _plan(session, plan)
    row = repository.project_price(session, project_id, found.id) if project_id is not None else None
    return quote(found, _cycle(session, cycle), rate(session, currency), _override(row))


def offers(session: Session, currency: str = BASE, project_id: int | None = None) -> Offers:
    """Every active plan priced for every active cycle in one currency, grouped by category."""
    conversion = rate(session, currency)
    cycles = repository.cycles(session, active_only=True)
    overrides = {r.plan_id: r for r in repository.project_prices(session, project_id)} if project_id else {}
    by_category: dict[int, list[PlanOffer]] = {}
    for plan in repository.plans(session, active_only=True):
        override = _override(overrides.get(plan.id))
        by_category.setdefault(plan.category_id, []).append(PlanOffer(
            plan=_plan_read(plan), prices=[quote(plan, c, conversion, override) for c in cycles],
            personalised=override is not None,
            monthly=money.convert(_monthly_usd(plan.monthly_price, override), conversion.rate, source=BASE,
                                  target=conversion.currency),
            list_monthly=money.convert(plan.monthly_price, conversion.rate, source=BASE, target=conversion.currency)))
    categories = [CategoryOffer(category=CategoryRead.model_validate(c), plans=by_category[c.id])
                  for c in repository.categories(session) if c.id in by_category]
    return Offers(currency=conversion.currency, rate=conversion, project_id=project_id, categories=categories)


def offers_for_member(session: Session, actor: Actor, project_id: int, currency: str = BASE) -> Offers:
    """The price list of a project the actor belongs to; another project reads as not found."""
    projects.require_membership(session, actor.user.id, project_id, fence=actor.project_scope)
    return offers(session, currency, project_id=project_id)


# ---- IP pools ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Span:
    first: int
    last: int  # inclusive


def _network(text: str, field: str = "cidr") -> IpNetwork:
    try:
        return ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as exc:
        raise Invalid(field, f"{text!r} is not a network in CIDR form (e.g. 203.0.113.0/24): {exc}.") from None


def _usable(net: IpNetwork) -> _Span:
    first, last = int(net.network_address), int(net.broadcast_address)
    if net.version == 4 and net.prefixlen <= 30:
        return _Span(first + 1, last - 1)  # the network and broadcast addresses
    if net.version == 6 and net.prefixlen <= 126:
        return _Span(first + 1, last)  # the subnet-router anycast address
    return _Span(first, last)


def _address(text: str, net: IpNetwork, field: str) -> int:
    try:
        addr = ipaddress.ip_address(text.strip())
    except ValueError:
        raise Invalid(field, f"{text!r} is not an IP address.") from None
    if addr not in net:
        raise Invalid(field, f"{text} is not inside {net}.")
    return int(addr)


def _reserved_spans(net: IpNetwork, gateway: str | None, reserved: list[str]) -> list[_Span]:
    spans: list[_Span] = []
    if gateway:
        spot = _address(gateway, net, "gateway")
        spans.append(_Span(spot, spot))
    for entry in reserved:
        if "/" in entry:
            inner = _network(entry, "reserved")
            if inner.version != net.version or not inner.subnet_of(net):  # type: ignore[arg-type]
                raise Invalid("reserved", f"{entry} is not inside {net}.")
            spans.append(_Span(int(inner.network_address), int(inner.broadcast_address)))
        else:
            spot = _address(entry, net, "reserved")
            spans.append(_Span(spot, spot))
    usable = _usable(net)
    clipped = [_Span(max(s.first, usable.first), min(s.last, usable.last)) for s in spans
               if s.last >= usable.first and s.first <= usable.last]
    merged: list[_Span] = []
    for span in sorted(clipped, key=lambda s: s.first):
        if merged and span.first <= merged[-1].last + 1:
            merged[-1] = _Span(merged[-1].first, max(merged[-1].last, span.last))
        else:
            merged.append(span)
    return merged


def _inside(spans: list[_Span], value: int) -> bool:
    return any(s.first <= value <= s.last for s in spans)


@dataclass(frozen=True)
class _PoolCount:
    usable: int
    reserved: int
    allocated: int

    @property
    def available(self) -> int:
        return max(0, self.usable - self.reserved - self.allocated)


def _count(pool: IpPool, allocated: list[str]) -> _PoolCount:
    net = _network(pool.cidr)
    usable = _usable(net)
    spans = _reserved_spans(net, pool.gateway, pool.reserved)
    taken = set()
    for text in allocated:
        value = int(ipaddress.ip_address(text))
        if usable.first <= value <= usable.last and not _inside(spans, value):
            taken.add(value)
    return _PoolCount(usable=usable.last - usable.first + 1, reserved=sum(s.last - s.first + 1 for s in spans),
                      allocated=len(taken))


def _available_by_region(session: Session) -> dict[int, int]:
    pools = [p for p in repository.pools(session) if p.is_active and _network(p.cidr).version == 4]
    allocated = repository.allocated_addresses(session, [p.id for p in pools])
    free: dict[int, int] = {}
    for pool in pools:
        free[pool.region_id] = free.get(pool.region_id, 0) + _count(pool, allocated[pool.id]).available
    return free


def _pool_read(pool: IpPool, allocated: list[str]) -> IpPoolRead:
    counts = _count(pool, allocated)
    return IpPoolRead(id=pool.id, region=pool.region.code, name=pool.name, cidr=pool.cidr,
                      version=_network(pool.cidr).version, gateway=pool.gateway, reserved=list(pool.reserved),
                      is_active=pool.is_active, usable=counts.usable, reserved_count=counts.reserved,
                      allocated=counts.allocated, available=counts.available)


def list_pools(session: Session, region: str | None = None) -> list[IpPoolRead]:
    """IP pools with their address counts, of one region (by code) or of all."""
    region_id = _region_by_code(session, region).id if region else None
    pools = repository.pools(session, region_id=region_id)
    allocated = repository.allocated_addresses(session, [p.id for p in pools])
    return [_pool_read(p, allocated[p.id]) for p in pools]


def _pool(session: Session, pool_id: int) -> IpPool:
    pool = repository.get(session, IpPool, pool_id)
    if pool is None:
        raise NotFound("IP pool", pool_id)
    return pool


def get_pool(session: Session, pool_id: int) -> IpPoolRead:
    """One IP pool with its address counts."""
    pool = _pool(session, pool_id)
    return _pool_read(pool, repository.allocated_addresses(session, [pool.id])[pool.id])


def _check_pool(session: Session, cidr: str, gateway: str | None, reserved: list[str],
                pool_id: int | None) -> tuple[str, str | None, list[str]]:
    net = _network(cidr)
    if net.version == 4 and net.prefixlen < 8:
        raise Invalid("cidr", "An IPv4 pool is at most a /8.")
    for other in repository.pools(session):
        if other.id == pool_id:
            continue
        other_net = _network(other.cidr)
        if other_net.version == net.version and other_net.overlaps(net):
            raise Conflict(f"{net} overlaps pool {other.id} ({other.cidr}).")
    _reserved_spans(net, gateway, reserved)  # raises Invalid for an address outside the pool
    normal_gateway = str(ipaddress.ip_address(gateway.strip())) if gateway else None
    normal_reserved = [str(_network(r, "reserved")) if "/" in r else str(ipaddress.ip_address(r.strip()))
                       for r in reserved]
    return str(net), normal_gateway, normal_reserved


def create_pool(session: Session, data: IpPoolCreate) -> IpPoolRead:
    """Add a pool of addresses to a region; it may not overlap another pool."""
    region = _region_by_code(session, data.region)
    cidr, gateway, reserved = _check_pool(session, data.cidr, data.gateway, data.reserved, None)
    pool = repository.insert(session, IpPool(region=region, region_id=region.id, name=data.name, cidr=cidr,
                                             gateway=gateway, reserved=reserved, is_active=data.is_active))
    return _pool_read(pool, [])


def update_pool(session: Session, pool_id: int, data: IpPoolUpdate) -> IpPoolRead:
    """Change a pool; its CIDR and region stay put while any of its addresses is allocated."""
    pool = _pool(session, pool_id)
    allocated = repository.allocated_addresses(session, [pool.id])[pool.id]
    changes = data.model_dump(exclude_unset=True)
    if allocated and (changes.get("cidr", pool.cidr) != pool.cidr or
                      changes.get("region", pool.region.code) != pool.region.code):
        raise Conflict("This pool has allocated addresses; its CIDR and region cannot change.")
    reserved_now: list[str] = data.reserved if data.reserved is not None else list(pool.reserved)
    cidr, gateway, reserved = _check_pool(session, data.cidr or pool.cidr, changes.get("gateway", pool.gateway),
                                          reserved_now, pool.id)
    if changes.get("region"):
        region = _region_by_code(session, changes["region"])
        pool.region, pool.region_id = region, region.id
    pool.cidr, pool.gateway, pool.reserved = cidr, gateway, reserved
    if changes.get("name") is not None:
        pool.name = changes["name"]
    if changes.get("is_active") is not None:
        pool.is_active = changes["is_active"]
    repository.flush(session)
    return _pool_read(pool, allocated)


def delete_pool(session: Session, pool_id: int) -> None:
    """Remove a pool none of whose addresses is allocated."""
    pool = _pool(session, pool_id)
    if repository.allocated_addresses(session, [pool.id])[pool.id]:
        raise Conflict("This pool has allocated addresses; release them first or deactivate the pool.")
    repository.delete(session, pool)


def free_addresses(session: Session, pool_id: int, *, limit: int = 1) -> list[str]:
    """Up to `limit` addresses of a pool that are neither gateway, reserved nor allocated, lowest first."""
    pool = _pool(session, pool_id)
    net = _network(pool.cidr)
    usable = _usable(net)
    spans = _reserved_spans(net, pool.gateway, pool.reserved)
    taken = {int(ipaddress.ip_address(a)) for a in repository.allocated_addresses(session, [pool.id])[pool.id]}
    found: list[str] = []
    value = usable.first
    while value <= usable.last and len(found) < limit:
        span = next((s for s in spans if s.first <= value <= s.last), None)
        if span is not None:
            value = span.last + 1
            continue
        if value not in taken:
            found.append(str(ipaddress.ip_address(value)))
        value += 1
    return found


# ---- catalogue files -----------------------------------------------------------------------------

class _ExactLoader(yaml.SafeLoader):
    """YAML whose decimals stay the text the operator typed, so "6.10" never passes through a float."""


_ExactLoader.add_constructor("tag:yaml.org,2002:float",
                             lambda loader, node: loader.construct_scalar(node))  # type: ignore[arg-type]


def parse_catalogue(text: str) -> CatalogueFile:
    """A catalogue file's YAML, checked; Invalid with the first problem."""
    try:
        raw: Any = yaml.load(text, Loader=_ExactLoader)  # noqa: S506  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise Invalid("file", f"The catalogue is not valid YAML: {exc}") from None
    return CatalogueFile.model_validate(raw or {})


def _given(entry: BaseModel, *skip: str) -> dict[str, Any]:
    # What the file says of an existing entry: only the fields written there, so loading never
    # resets what an operator changed through the API and the file does not mention.
    return entry.model_dump(exclude_unset=True, exclude=set(skip))


def _upsert(session: Session, report: LoadReport, section: str, found: object | None) -> None:
    bucket = report.updated if found is not None else report.created
    bucket[section] = bucket.get(section, 0) + 1


def load_catalogue(session: Session, catalogue: CatalogueFile, *, rate_source: str = "catalogue file") -> LoadReport:
    """Create or update every entry of a catalogue by its code (pools by CIDR); loading twice changes nothing."""
    report = LoadReport(created={}, updated={})
    for region in catalogue.regions:
        existing = repository.region_by_code(session, region.code)
        _upsert(session, report, "regions", existing)
        if existing is None:
            create_region(session, region)
        else:
            update_region(session, existing.id, RegionUpdate(**_given(region, "code")))
    for category in catalogue.categories:
        found_category = repository.category_by_code(session, category.code)
        _upsert(session, report, "categories", found_category)
        if found_category is None:
            create_category(session, category)
        else:
            update_category(session, found_category.id, CategoryUpdate(**_given(category, "code")))
    for plan in catalogue.plans:
        if repository.category_by_code(session, plan.category) is None:
            create_category(session, CategoryCreate(code=plan.category, name=plan.category.replace("-", " ").title()))
        found_plan = repository.plan_by_code(session, plan.code)
        _upsert(session, report, "plans", found_plan)
        if found_plan is None:
            create_plan(session, plan)
        else:
            update_plan(session, found_plan.id, PlanUpdate(**_given(plan, "code", "monthly_price")))
    for cycle in catalogue.cycles:
        found_cycle = repository.cycle_by_code(session, cycle.code)
        _upsert(session, report, "cycles", found_cycle)
        if found_cycle is None:
            create_cycle(session, cycle)
        else:
            update_cycle(session, found_cycle.id, CycleUpdate(**_given(cycle, "code")))
    for currency, value in catalogue.rates.items():
        code = money.normalize_currency(currency)
        if code == BASE:
            continue
        existing_rate = repository.rate_of(session, code)
        if existing_rate is not None and existing_rate.rate == value:
            continue  # the same rate again keeps its fetched_at
        _upsert(session, report, "rates", existing_rate)
        set_rate(session, code, RateSet(rate=value, source=rate_source))
    for template in catalogue.templates:
        found_template = repository.template_by_code(session, template.code)
        _upsert(session, report, "templates", found_template)
        if found_template is None:
            create_template(session, template)
        else:
            update_template(session, found_template.id, TemplateUpdate(
                **_given(template, "code", "min_balance")))
    for pool in catalogue.pools:
        found_pool = repository.pool_by_cidr(session, str(_network(pool.cidr)))
        _upsert(session, report, "pools", found_pool)
        if found_pool is None:
            create_pool(session, pool)
        else:
            update_pool(session, found_pool.id, IpPoolUpdate(**_given(pool, "cidr")))
    return report


def is_empty(session: Session) -> bool:
    """Whether nothing has been put in the catalogue yet."""
    return repository.is_empty(session)


def seed_default(session: Session) -> LoadReport | None:
    """Load the default catalogue into an empty one, so a new installation can sell at once; else None."""
    if not repository.is_empty(session):
        return None
    return load_catalogue(session, DEFAULT_CATALOGUE, rate_source="default catalogue placeholder; set real rates")
