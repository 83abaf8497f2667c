"""CyberPanel surface: VPS plans, locations and OS templates (vps:read), in the success envelope.

Prices are USD strings as the reference shows them: "6.00" a month, "0.0082" an hour (monthly / 730).
A template's `id` is a string, as in the reference; a template that needs a minimum balance says so
in its description ("(requires $20 min balance)").
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel

from cloudlet.auth.caller import Caller
from cloudlet.catalog import service as catalog
from cloudlet.catalog.schemas import PlanRead, RegionRead, TemplateRead
from cloudlet.kit import money
from cloudlet.networking import service as networking
from cloudlet.surfaces.cyberpanel.errors import envelope
from cloudlet.surfaces.deps import DbSession, requires
from cloudlet.tokens.abilities import Ability

router = APIRouter(prefix="/api/v1/vps", tags=["cyberpanel"])

VpsReader = Annotated[Caller, requires(Ability.INSTANCES_READ)]


class CpPlan(BaseModel):
    """A plan as CyberPanel lists it."""

    id: int
    name: str
    cpu_cores: int
    ram_mb: int
    disk_gb: int
    bandwidth_gb: int
    monthly_price: str
    price_hourly: str

    @classmethod
    def of(cls, plan: PlanRead) -> CpPlan:
        """Render a plan."""
        return cls(id=plan.id, name=plan.name, cpu_cores=plan.vcpu, ram_mb=plan.ram_mb, disk_gb=plan.disk_gb,
                   bandwidth_gb=plan.bandwidth_gb, monthly_price=plan.monthly_price, price_hourly=plan.hourly_price)


class CpLocation(BaseModel):
    """A location as CyberPanel lists it."""

    code: str
    name: str
    country: str
    available_ips: int
    is_available: bool

    @classmethod
    def of(cls, region: RegionRead) -> CpLocation:
        """Render a region."""
        return cls(code=region.code, name=region.name, country=region.country, available_ips=region.available_ips,
                   is_available=region.is_available)


def _dollars(cents: int) -> str:
    amount = money.to_decimal(cents, "USD")
    return str(amount.quantize(Decimal(1))) if amount == amount.to_integral_value() else str(amount)


class CpTemplate(BaseModel):
    """An OS template as CyberPanel lists it."""

    id: str
    name: str
    os: str
    description: str

    @classmethod
    def of(cls, template: TemplateRead) -> CpTemplate:
        """Render a template, naming its minimum balance if it has one."""
        description = template.description or template.name
        if template.min_balance_cents > 0 and "min balance" not in description.lower():
            description = f"{description} (requires ${_dollars(template.min_balance_cents)} min balance)"
        return cls(id=str(template.id), name=template.name, os=template.os or template.name, description=description)


@router.get("/plans", summary="List VPS Plans")
def list_plans(caller: VpsReader, db: DbSession) -> dict[str, Any]:
    """The plans on sale, with monthly and hourly USD prices."""
    plans = [CpPlan.of(p).model_dump() for p in catalog.list_plans(db, active_only=True)]
    return envelope({"plans": plans})


@router.get("/locations", summary="List Locations")
def list_locations(caller: VpsReader, db: DbSession) -> dict[str, Any]:
    """Every location, with how many IPv4 addresses it can still hand out."""
    return envelope({"locations": [CpLocation.of(r).model_dump() for r in networking.list_regions(db)]})


@router.get("/templates", summary="List OS Templates")
def list_templates(caller: VpsReader, db: DbSession) -> dict[str, Any]:
    """The OS templates servers can be built with."""
    templates = [CpTemplate.of(t).model_dump() for t in catalog.list_templates(db, active_only=True)]
    return envelope({"templates": templates})
