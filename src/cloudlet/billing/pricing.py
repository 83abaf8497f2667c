"""Prices: exchange rates, each project's own prices, and the arithmetic that prices a plan's cycle.

The catalogue says what is sold (plans with USD list prices, billing cycles with their discounts, OS
templates); this module, asked through catalog's service, says what it costs a project in a currency:

    price(session, plan, cycle, currency="USD", project_id=None) -> Price
        One cycle of a plan in a currency; `plan` is a plan id or code, `cycle` a cycle id or code.
        Raises NotFound (plan, cycle) or Invalid (currency without a rate).
    offers(session, currency="USD", project_id=None) -> Offers
        Every active plan with a Price per active cycle, by category.
    quote(plan, cycle, rate, override) -> Price
        The same arithmetic on what is already loaded (no queries).
    rate(session, currency) -> RateRead
        The stored rate of a currency (USD is 1).
    require_balance_for_template(session, template_id, balance: Money) -> None
        PaymentRequired when the balance is under the template's minimum (Windows: $20).
    plan_price(session, plan_id, cycle, currency, project_id) -> PlanPrice
        What the billing engine needs of a price (hourly: the monthly price the hours are capped at).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloudlet.billing import repository
from cloudlet.billing.models import HOURLY, ExchangeRate, ProjectPrice
from cloudlet.billing.schemas import (
    CategoryOffer,
    Offers,
    OverrideKind,
    PlanOffer,
    Price,
    PriceOverride,
    ProjectPriceCreate,
    ProjectPriceRead,
    ProjectPriceUpdate,
    RateRead,
    RateSet,
)
from cloudlet.catalog import service as catalog
from cloudlet.catalog.schemas import CycleRead, LoadReport, PlanRead
from cloudlet.kit import clock, money
from cloudlet.kit.errors import Conflict, Invalid, NotFound, PaymentRequired
from cloudlet.projects import service as projects
from cloudlet.projects.schemas import Actor

BASE = money.BASE_CURRENCY
MONTHLY = "monthly"


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
        row = repository.insert_rate(session, ExchangeRate(currency=code, rate=data.rate, source=data.source,
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
    repository.delete_rate(session, row)


def load_rates(session: Session, rates: dict[str, Decimal], report: LoadReport, *, source: str) -> None:
    """Store a catalogue file's rates, counting them in report; a rate that did not change keeps its fetched_at."""
    for currency, value in rates.items():
        code = money.normalize_currency(currency)
        if code == BASE:
            continue
        existing = repository.rate_of(session, code)
        if existing is not None and existing.rate == value:
            continue
        bucket = report.updated if existing is not None else report.created
        bucket["rates"] = bucket.get("rates", 0) + 1
        set_rate(session, code, RateSet(rate=value, source=source))


# ---- per-project prices --------------------------------------------------------------------------

def _project_price_read(row: ProjectPrice, plan_code: str) -> ProjectPriceRead:
    kind = OverrideKind.FIXED if row.monthly_price is not None else OverrideKind.DISCOUNT
    return ProjectPriceRead(id=row.id, project_id=row.project_id, plan_id=row.plan_id, plan_code=plan_code,
                            kind=kind, discount_bps=row.discount_bps, monthly_price_cents=row.monthly_price,
                            note=row.note, created_at=row.created_at)


def list_project_prices(session: Session, project_id: int | None = None) -> list[ProjectPriceRead]:
    """Project prices, of one project or of all."""
    codes = {p.id: p.code for p in catalog.list_plans(session)}
    return [_project_price_read(r, codes.get(r.plan_id, "")) for r in repository.project_prices(session, project_id)]


def _project_price(session: Session, price_id: int) -> ProjectPrice:
    row = repository.project_price_by_id(session, price_id)
    if row is None:
        raise NotFound("project price", price_id)
    return row


def create_project_price(session: Session, data: ProjectPriceCreate) -> ProjectPriceRead:
    """Give a project its own price of a plan (one per project and plan)."""
    plan = catalog.get_plan(session, data.plan_id)
    if repository.project_price(session, data.project_id, plan.id) is not None:
        raise Conflict("This project already has its own price of this plan; change that one instead.")
    row = ProjectPrice(project_id=data.project_id, plan_id=plan.id, discount_bps=data.discount_bps,
                       monthly_price=data.monthly_price_cents, note=data.note)
    try:
        with session.begin_nested():  # a missing project fails the foreign key; keep the transaction usable
            repository.insert_project_price(session, row)
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
    return _project_price_read(row, catalog.get_plan(session, row.plan_id).code)


def delete_project_price(session: Session, price_id: int) -> None:
    """Return a project to the list price of a plan."""
    repository.delete_project_price(session, _project_price(session, price_id))


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


def quote(plan: PlanRead, cycle: CycleRead, conversion: RateRead, override: PriceOverride | None) -> Price:
    """Price one cycle of a plan from what is loaded (no queries): USD first, then one conversion."""
    list_price = plan.monthly_price_cents
    monthly_usd = _monthly_usd(list_price, override)
    amount_usd = money.apply_discount(monthly_usd * cycle.months, cycle.discount_bps)
    currency = conversion.currency

    def convert(amount: int) -> int:
        return money.convert(amount, conversion.rate, source=BASE, target=currency)

    return Price(plan_id=plan.id, plan_code=plan.code, cycle=cycle.code, months=cycle.months, currency=currency,
                 amount=convert(amount_usd), monthly=convert(monthly_usd), list_monthly=convert(list_price),
                 cycle_discount_bps=cycle.discount_bps, override=override, amount_usd=amount_usd,
                 monthly_usd=monthly_usd, rate=conversion.rate, rate_fetched_at=conversion.fetched_at)


def price(session: Session, plan: int | str, cycle: int | str, currency: str = BASE,
          project_id: int | None = None) -> Price:
    """The price of one cycle of a plan in a currency, with the project's own price applied.

    Raises NotFound for an unknown plan or cycle and Invalid for a currency without a stored rate.
    Retired plans and cycles are still priced (renewals of what was sold); ordering checks that they
    are active.
    """
    found = catalog.get_plan(session, plan)
    row = repository.project_price(session, project_id, found.id) if project_id is not None else None
    return quote(found, catalog.get_cycle(session, cycle), rate(session, currency), _override(row))


def offers(session: Session, currency: str = BASE, project_id: int | None = None) -> Offers:
    """Every active plan priced for every active cycle in one currency, grouped by category."""
    conversion = rate(session, currency)
    cycles = catalog.list_cycles(session, active_only=True)
    overrides = {r.plan_id: r for r in repository.project_prices(session, project_id)} if project_id else {}
    by_category: dict[str, list[PlanOffer]] = {}
    for plan in catalog.list_plans(session, active_only=True):
        override = _override(overrides.get(plan.id))
        by_category.setdefault(plan.category, []).append(PlanOffer(
            plan=plan, prices=[quote(plan, c, conversion, override) for c in cycles],
            personalised=override is not None,
            monthly=money.convert(_monthly_usd(plan.monthly_price_cents, override), conversion.rate, source=BASE,
                                  target=conversion.currency),
            list_monthly=money.convert(plan.monthly_price_cents, conversion.rate, source=BASE,
                                       target=conversion.currency)))
    categories = [CategoryOffer(category=c, plans=by_category[c.code])
                  for c in catalog.list_categories(session) if c.code in by_category]
    return Offers(currency=conversion.currency, rate=conversion, project_id=project_id, categories=categories)


def offers_for_member(session: Session, actor: Actor, project_id: int, currency: str = BASE) -> Offers:
    """The price list of a project the actor belongs to; another project reads as not found."""
    projects.require_membership(session, actor.user.id, project_id, fence=actor.project_scope)
    return offers(session, currency, project_id=project_id)


def require_balance_for_template(session: Session, template: int | str, balance: money.Money) -> None:
    """Refuse (PaymentRequired) an order whose balance is under the template's minimum."""
    found = catalog.get_template(session, template)
    if found.min_balance_cents <= 0:
        return
    needed = money.convert(found.min_balance_cents, rate(session, balance.currency).rate, source=BASE,
                           target=balance.currency)
    if balance.amount < needed:
        raise PaymentRequired(f"{found.name} requires a balance of at least "
                              f"{money.format_amount(needed, balance.currency)} {balance.currency}.")


# ---- what the billing engine asks ----------------------------------------------------------------

@dataclass(frozen=True)
class PlanPrice:
    """What the engine needs of a price: one cycle's amount and length, in one currency."""

    plan_id: int
    cycle: str
    months: int
    currency: str
    amount_cents: int  # one cycle; for hourly billing, the monthly price the hours are capped at

    @property
    def hourly(self) -> bool:
        """Whether this is an hourly price."""
        return self.cycle == HOURLY


def plan_price(session: Session, plan_id: int, cycle: str, currency: str, project_id: int | None) -> PlanPrice:
    """A plan's price for a cycle (or hourly: its monthly price before cycle discounts) in a currency."""
    if cycle == HOURLY:
        monthly = price(session, plan_id, MONTHLY, currency, project_id)
        return PlanPrice(plan_id=monthly.plan_id, cycle=HOURLY, months=1, currency=monthly.currency,
                         amount_cents=monthly.monthly)
    found = price(session, plan_id, cycle, currency, project_id)
    return PlanPrice(plan_id=found.plan_id, cycle=found.cycle, months=found.months, currency=found.currency,
                     amount_cents=found.amount)
