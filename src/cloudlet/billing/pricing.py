"""The one place the billing engine asks the catalogue for a price (thin glue, kept small on purpose)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from cloudlet.billing.models import HOURLY
from cloudlet.catalog import service as catalog

MONTHLY = "monthly"


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
        price = catalog.price(session, plan_id, MONTHLY, currency, project_id)
        return PlanPrice(plan_id=price.plan_id, cycle=HOURLY, months=1, currency=price.currency,
                         amount_cents=price.monthly)
    price = catalog.price(session, plan_id, cycle, currency, project_id)
    return PlanPrice(plan_id=price.plan_id, cycle=price.cycle, months=price.months, currency=price.currency,
                     amount_cents=price.amount)
