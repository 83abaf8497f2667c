"""Primary surface: the catalogue (Evorxa's catalog section).

Public, no credential: GET /api/catalog/plans, /regions, /billing-cycles, /exchange-rates.
Any credential: GET /api/me/catalog/plans (the caller's project prices applied).
instances:read: GET /api/catalog/os-templates/{packageId}.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from cloudlet.auth.caller import Caller
from cloudlet.billing import pricing
from cloudlet.catalog import service as catalog
from cloudlet.kit.ids import MAX_ID
from cloudlet.surfaces.deps import AuthedCaller, DbSession, requires
from cloudlet.surfaces.params import PathId
from cloudlet.surfaces.primary.catalog_schemas import (
    BillingCycleBrief,
    CatalogPlansRead,
    ExchangeRatesRead,
    OsGroupRead,
    RegionBrief,
)
from cloudlet.tokens.abilities import Ability

router = APIRouter(prefix="/api", tags=["primary"])

CurrencyQuery = Annotated[str, Query(max_length=8, description="USD (default), SAR, EGP, or any stored currency.")]


@router.get("/catalog/plans", response_model=CatalogPlansRead, summary="Plan categories with per-cycle pricing")
def catalog_plans(db: DbSession, currency: CurrencyQuery = "USD") -> CatalogPlansRead:
    """Every active package by category, priced for every billing cycle in the requested currency."""
    return CatalogPlansRead.of(pricing.offers(db, currency))


@router.get("/catalog/regions", response_model=list[RegionBrief], summary="Region codes, names, flags")
def catalog_regions(db: DbSession) -> list[RegionBrief]:
    """Every region, available or not."""
    return [RegionBrief.of(r) for r in catalog.list_regions(db)]


@router.get("/catalog/billing-cycles", response_model=list[BillingCycleBrief],
            summary="Monthly, 6-month, yearly and their cycle discounts")
def catalog_billing_cycles(db: DbSession) -> list[BillingCycleBrief]:
    """The active billing cycles, shortest first."""
    return [BillingCycleBrief.of(c) for c in catalog.list_cycles(db, active_only=True)]


@router.get("/catalog/exchange-rates", response_model=ExchangeRatesRead,
            summary="Rates for USD, SAR, EGP plus the fetched_at timestamp")
def catalog_exchange_rates(db: DbSession) -> ExchangeRatesRead:
    """The stored rates against USD and when each was fetched."""
    return ExchangeRatesRead.of(pricing.list_rates(db))


@router.get("/me/catalog/plans", response_model=CatalogPlansRead, summary="Plans with your own pricing applied")
def my_catalog_plans(
    caller: AuthedCaller,
    db: DbSession,
    currency: CurrencyQuery = "USD",
    project_id: Annotated[int | None, Query(ge=1, le=MAX_ID,
                                            description="A project of yours; default your current one.")] = None,
) -> CatalogPlansRead:
    """The public price list with the project's own prices applied."""
    project = project_id if project_id is not None else caller.project_id
    return CatalogPlansRead.of(pricing.offers_for_member(db, caller, project, currency))


@router.get("/catalog/os-templates/{package_id}", response_model=list[OsGroupRead],
            summary="OS groups with template variants for a package")
def catalog_os_templates(
    package_id: PathId,
    caller: Annotated[Caller, requires(Ability.INSTANCES_READ)],
    db: DbSession,
) -> list[OsGroupRead]:
    """The templates that fit the package, grouped by OS family."""
    return [OsGroupRead.of(g) for g in catalog.templates_for_plan(db, package_id)]
