"""WaysCloud surface: plans, OS templates and regions (instances:read), as bare JSON arrays.

`price` is a JSON number, as the reference has it, in `currency` (USD unless ?currency= names
another stored currency, e.g. NOK). The plans list answers at /v1/vps/plans/ (the reference's
path) and at /v1/vps/plans alike.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from cloudlet.auth.caller import Caller
from cloudlet.billing import pricing
from cloudlet.billing.schemas import PlanOffer
from cloudlet.catalog import service as catalog
from cloudlet.catalog.schemas import RegionRead, TemplateRead
from cloudlet.kit import money
from cloudlet.surfaces.deps import DbSession, requires
from cloudlet.tokens.abilities import Ability

router = APIRouter(prefix="/v1/vps", tags=["wayscloud"])

VpsReader = Annotated[Caller, requires(Ability.INSTANCES_READ)]


class WcPlan(BaseModel):
    """A plan as WaysCloud lists it."""

    plan_code: str
    name: str
    vcpus: int
    ram_gb: int | float
    storage_gb: int
    bandwidth_tb: float
    price: float
    currency: str

    @classmethod
    def of(cls, offer: PlanOffer, currency: str) -> WcPlan:
        """Render a plan at its monthly list price in `currency`."""
        plan = offer.plan
        ram = Decimal(plan.ram_mb) / 1024
        return cls(plan_code=plan.code, name=plan.name, vcpus=plan.vcpu,
                   ram_gb=int(ram) if ram == ram.to_integral_value() else float(ram), storage_gb=plan.disk_gb,
                   bandwidth_tb=float(Decimal(plan.bandwidth_gb) / 1000),
                   price=float(money.to_decimal(offer.monthly, currency)), currency=currency)


class WcTemplate(BaseModel):
    """An OS template as WaysCloud lists it."""

    id: str
    name: str
    family: str
    version: str
    is_windows: bool

    @classmethod
    def of(cls, template: TemplateRead) -> WcTemplate:
        """Render a template; its id is its code ("debian-12")."""
        return cls(id=template.code, name=template.name, family=template.family, version=template.version,
                   is_windows=template.is_windows)


class WcRegion(BaseModel):
    """A region as WaysCloud lists it."""

    id: str
    name: str
    country: str
    available: bool

    @classmethod
    def of(cls, region: RegionRead) -> WcRegion:
        """Render a region; its id is its code."""
        return cls(id=region.code, name=region.name, country=region.country, available=region.is_available)


@router.get("/plans/", response_model=list[WcPlan], summary="List plans")
@router.get("/plans", response_model=list[WcPlan], include_in_schema=False)
def list_plans(
    caller: VpsReader,
    db: DbSession,
    currency: Annotated[str, Query(max_length=8, description="USD by default; any stored currency.")] = "USD",
) -> list[WcPlan]:
    """The plans on sale with their monthly price."""
    offers = pricing.offers(db, currency)
    return [WcPlan.of(o, offers.currency) for c in offers.categories for o in c.plans]


@router.get("/os-templates", response_model=list[WcTemplate], summary="List OS templates")
def list_os_templates(caller: VpsReader, db: DbSession) -> list[WcTemplate]:
    """The OS templates servers can be built with."""
    return [WcTemplate.of(t) for t in catalog.list_templates(db, active_only=True)]


@router.get("/regions", response_model=list[WcRegion], summary="List regions")
def list_regions(caller: VpsReader, db: DbSession) -> list[WcRegion]:
    """Every region and whether it takes new servers."""
    return [WcRegion.of(r) for r in catalog.list_regions(db)]
