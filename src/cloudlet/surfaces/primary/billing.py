"""Primary surface: billing quotes - what creating, upgrading or deleting would cost, changing nothing."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from cloudlet.auth.caller import Caller
from cloudlet.billing import service as billing
from cloudlet.kit import money
from cloudlet.surfaces.deps import AppSettings, DbSession, requires
from cloudlet.surfaces.primary.billing_schemas import PrimaryQuoteRead, QuoteCreate
from cloudlet.tokens.abilities import Ability

router = APIRouter(prefix="/api/billing", tags=["primary"])

InstancesReader = Annotated[Caller, requires(Ability.INSTANCES_READ)]


@router.post("/quotes", response_model=PrimaryQuoteRead,
             summary="Price a creation, an upgrade or a deletion refund (nothing is charged)")
def create_quote(body: QuoteCreate, caller: InstancesReader, db: DbSession, settings: AppSettings) -> PrimaryQuoteRead:
    """A quote in the wallet's currency (or the one asked for): positive to pay, negative to get back."""
    quote = billing.quote(db, settings, caller, body.action, plan_id=body.plan_id, cycle=body.cycle,
                          currency=body.currency, to_plan_id=body.to_plan_id, subscription_id=body.subscription_id,
                          now=body.at)
    return PrimaryQuoteRead.of(quote, money.format_amount(quote.amount_cents, quote.currency))
