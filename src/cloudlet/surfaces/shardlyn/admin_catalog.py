"""Shardlyn surface: the plans customers see, and the operator's catalogue administration.

GET /v1/billing/plans (any credential): the plans on sale, `{"plans": [...]}`.

Administrators (AdminCaller) manage the catalogue. Lists answer `{"<things>": [...]}`, one object
answers itself, POST answers 201, DELETE answers 204; PUT changes only the fields sent. Prices are
USD: `monthly_price_cents` (integer) or `monthly_price` (decimal string, "6.00").

    GET/POST /v1/admin/plans              PUT/DELETE /v1/admin/plans/{id}
    GET/POST /v1/admin/plan-categories    PUT/DELETE /v1/admin/plan-categories/{id}
    GET/POST /v1/admin/regions            PUT/DELETE /v1/admin/regions/{id}
    GET/POST /v1/admin/billing-cycles     PUT/DELETE /v1/admin/billing-cycles/{id}
    GET/POST /v1/admin/os-templates       PUT/DELETE /v1/admin/os-templates/{id}
    GET      /v1/admin/exchange-rates     PUT/DELETE /v1/admin/exchange-rates/{currency}
    GET/POST /v1/admin/project-prices     PUT/DELETE /v1/admin/project-prices/{id}   (?project_id= filters)
    GET/POST /v1/admin/ip-pools           GET/PUT/DELETE /v1/admin/ip-pools/{id}      (?region= filters)

Deleting a plan removes it with its project prices; a region with IP pools, a category with plans
and a pool with allocated addresses are refused (409).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel

from cloudlet.billing import pricing
from cloudlet.billing.schemas import ProjectPriceCreate, ProjectPriceRead, ProjectPriceUpdate, RateRead, RateSet
from cloudlet.catalog import service as catalog
from cloudlet.catalog.schemas import (
    CategoryCreate,
    CategoryRead,
    CategoryUpdate,
    CycleCreate,
    CycleRead,
    CycleUpdate,
    PlanCreate,
    PlanRead,
    PlanUpdate,
    RegionCreate,
    RegionRead,
    RegionUpdate,
    TemplateCreate,
    TemplateRead,
    TemplateUpdate,
)
from cloudlet.images import service as images
from cloudlet.kit.ids import MAX_ID
from cloudlet.networking import service as networking
from cloudlet.networking.schemas import IpPoolCreate, IpPoolRead, IpPoolUpdate
from cloudlet.surfaces.deps import AdminCaller, AuthedCaller, DbSession
from cloudlet.surfaces.params import PathId

router = APIRouter(tags=["shardlyn"])



def _no_content() -> Response:
    return Response(status_code=204)


class PlanList(BaseModel):
    """Plans."""

    plans: list[PlanRead]


class CategoryList(BaseModel):
    """Plan categories."""

    categories: list[CategoryRead]


class RegionList(BaseModel):
    """Regions."""

    regions: list[RegionRead]


class CycleList(BaseModel):
    """Billing cycles."""

    billing_cycles: list[CycleRead]


class TemplateList(BaseModel):
    """OS templates."""

    os_templates: list[TemplateRead]


class RateList(BaseModel):
    """Exchange rates against USD."""

    base: str
    exchange_rates: list[RateRead]


class ProjectPriceList(BaseModel):
    """Project prices."""

    project_prices: list[ProjectPriceRead]


class IpPoolList(BaseModel):
    """IP pools."""

    ip_pools: list[IpPoolRead]


# ---- plans ---------------------------------------------------------------------------------------

@router.get("/v1/billing/plans", response_model=PlanList, summary="List plans")
def billing_plans(caller: AuthedCaller, db: DbSession) -> PlanList:
    """The plans on sale, with USD list prices."""
    return PlanList(plans=catalog.list_plans(db, active_only=True))


@router.get("/v1/admin/plans", response_model=PlanList, summary="List plans")
def admin_list_plans(caller: AdminCaller, db: DbSession) -> PlanList:
    """Every plan, retired ones included."""
    return PlanList(plans=catalog.list_plans(db))


@router.post("/v1/admin/plans", status_code=201, response_model=PlanRead, summary="Create plan")
def admin_create_plan(body: PlanCreate, caller: AdminCaller, db: DbSession) -> PlanRead:
    """Add a plan."""
    return catalog.create_plan(db, body)


@router.put("/v1/admin/plans/{plan_id}", response_model=PlanRead, summary="Update plan")
def admin_update_plan(plan_id: PathId, body: PlanUpdate, caller: AdminCaller, db: DbSession) -> PlanRead:
    """Change a plan (is_active=false retires it from sale)."""
    return catalog.update_plan(db, plan_id, body)


@router.delete("/v1/admin/plans/{plan_id}", status_code=204, summary="Delete plan")
def admin_delete_plan(plan_id: PathId, caller: AdminCaller, db: DbSession) -> Response:
    """Remove a plan."""
    catalog.delete_plan(db, plan_id)
    return _no_content()


# ---- plan categories -----------------------------------------------------------------------------

@router.get("/v1/admin/plan-categories", response_model=CategoryList, summary="List plan categories")
def admin_list_categories(caller: AdminCaller, db: DbSession) -> CategoryList:
    """Every plan category."""
    return CategoryList(categories=catalog.list_categories(db))


@router.post("/v1/admin/plan-categories", status_code=201, response_model=CategoryRead,
             summary="Create plan category")
def admin_create_category(body: CategoryCreate, caller: AdminCaller, db: DbSession) -> CategoryRead:
    """Add a plan category."""
    return catalog.create_category(db, body)


@router.put("/v1/admin/plan-categories/{category_id}", response_model=CategoryRead, summary="Update plan category")
def admin_update_category(category_id: PathId, body: CategoryUpdate, caller: AdminCaller,
                          db: DbSession) -> CategoryRead:
    """Rename or reorder a plan category."""
    return catalog.update_category(db, category_id, body)


@router.delete("/v1/admin/plan-categories/{category_id}", status_code=204, summary="Delete plan category")
def admin_delete_category(category_id: PathId, caller: AdminCaller, db: DbSession) -> Response:
    """Remove an empty plan category."""
    catalog.delete_category(db, category_id)
    return _no_content()


# ---- regions -------------------------------------------------------------------------------------

@router.get("/v1/admin/regions", response_model=RegionList, summary="List regions")
def admin_list_regions(caller: AdminCaller, db: DbSession) -> RegionList:
    """Every region with its free IPv4 addresses."""
    return RegionList(regions=networking.list_regions(db))


@router.post("/v1/admin/regions", status_code=201, response_model=RegionRead, summary="Create region")
def admin_create_region(body: RegionCreate, caller: AdminCaller, db: DbSession) -> RegionRead:
    """Add a region."""
    return catalog.create_region(db, body)


@router.put("/v1/admin/regions/{region_id}", response_model=RegionRead, summary="Update region")
def admin_update_region(region_id: PathId, body: RegionUpdate, caller: AdminCaller, db: DbSession) -> RegionRead:
    """Change a region (is_available=false stops new servers there)."""
    return networking.update_region(db, region_id, body)


@router.delete("/v1/admin/regions/{region_id}", status_code=204, summary="Delete region")
def admin_delete_region(region_id: PathId, caller: AdminCaller, db: DbSession) -> Response:
    """Remove a region without IP pools."""
    networking.delete_region(db, region_id)
    return _no_content()


# ---- billing cycles ------------------------------------------------------------------------------

@router.get("/v1/admin/billing-cycles", response_model=CycleList, summary="List billing cycles")
def admin_list_cycles(caller: AdminCaller, db: DbSession) -> CycleList:
    """Every billing cycle."""
    return CycleList(billing_cycles=catalog.list_cycles(db))


@router.post("/v1/admin/billing-cycles", status_code=201, response_model=CycleRead, summary="Create billing cycle")
def admin_create_cycle(body: CycleCreate, caller: AdminCaller, db: DbSession) -> CycleRead:
    """Add a billing cycle."""
    return catalog.create_cycle(db, body)


@router.put("/v1/admin/billing-cycles/{cycle_id}", response_model=CycleRead, summary="Update billing cycle")
def admin_update_cycle(cycle_id: PathId, body: CycleUpdate, caller: AdminCaller, db: DbSession) -> CycleRead:
    """Change a billing cycle's length, discount or availability."""
    return catalog.update_cycle(db, cycle_id, body)


@router.delete("/v1/admin/billing-cycles/{cycle_id}", status_code=204, summary="Delete billing cycle")
def admin_delete_cycle(cycle_id: PathId, caller: AdminCaller, db: DbSession) -> Response:
    """Remove a billing cycle."""
    catalog.delete_cycle(db, cycle_id)
    return _no_content()


# ---- OS templates --------------------------------------------------------------------------------

@router.get("/v1/admin/os-templates", response_model=TemplateList, summary="List OS templates")
def admin_list_templates(caller: AdminCaller, db: DbSession) -> TemplateList:
    """Every OS template."""
    return TemplateList(os_templates=catalog.list_templates(db))


@router.post("/v1/admin/os-templates", status_code=201, response_model=TemplateRead, summary="Create OS template")
def admin_create_template(body: TemplateCreate, caller: AdminCaller, db: DbSession) -> TemplateRead:
    """Add an OS template (its image, when named, must be registered)."""
    if body.image_id is not None:
        images.require_image(db, body.image_id)
    return catalog.create_template(db, body)


@router.put("/v1/admin/os-templates/{template_id}", response_model=TemplateRead, summary="Update OS template")
def admin_update_template(template_id: PathId, body: TemplateUpdate, caller: AdminCaller,
                          db: DbSession) -> TemplateRead:
    """Change an OS template (its image, when named, must be registered)."""
    if body.image_id is not None:
        images.require_image(db, body.image_id)
    return catalog.update_template(db, template_id, body)


@router.delete("/v1/admin/os-templates/{template_id}", status_code=204, summary="Delete OS template")
def admin_delete_template(template_id: PathId, caller: AdminCaller, db: DbSession) -> Response:
    """Remove an OS template."""
    catalog.delete_template(db, template_id)
    return _no_content()


# ---- exchange rates ------------------------------------------------------------------------------

@router.get("/v1/admin/exchange-rates", response_model=RateList, summary="List exchange rates")
def admin_list_rates(caller: AdminCaller, db: DbSession) -> RateList:
    """USD and every stored rate, with when each was fetched."""
    return RateList(base="USD", exchange_rates=pricing.list_rates(db))


@router.put("/v1/admin/exchange-rates/{currency}", response_model=RateRead, summary="Set exchange rate")
def admin_set_rate(currency: str, body: RateSet, caller: AdminCaller, db: DbSession) -> RateRead:
    """Store how many units of `currency` one US dollar buys (a decimal string, e.g. "3.75")."""
    return pricing.set_rate(db, currency, body)


@router.delete("/v1/admin/exchange-rates/{currency}", status_code=204, summary="Delete exchange rate")
def admin_delete_rate(currency: str, caller: AdminCaller, db: DbSession) -> Response:
    """Stop quoting prices in a currency."""
    pricing.delete_rate(db, currency)
    return _no_content()


# ---- project prices ------------------------------------------------------------------------------

@router.get("/v1/admin/project-prices", response_model=ProjectPriceList, summary="List project prices")
def admin_list_project_prices(
    caller: AdminCaller,
    db: DbSession,
    project_id: Annotated[int | None, Query(ge=1, le=MAX_ID, description="Only this project's prices.")] = None,
) -> ProjectPriceList:
    """Projects' own prices of plans."""
    return ProjectPriceList(project_prices=pricing.list_project_prices(db, project_id))


@router.post("/v1/admin/project-prices", status_code=201, response_model=ProjectPriceRead,
             summary="Create project price")
def admin_create_project_price(body: ProjectPriceCreate, caller: AdminCaller, db: DbSession) -> ProjectPriceRead:
    """Give a project a discount on a plan, or a fixed monthly price for it."""
    return pricing.create_project_price(db, body)


@router.put("/v1/admin/project-prices/{price_id}", response_model=ProjectPriceRead, summary="Update project price")
def admin_update_project_price(price_id: PathId, body: ProjectPriceUpdate, caller: AdminCaller,
                               db: DbSession) -> ProjectPriceRead:
    """Change a project's price of a plan."""
    return pricing.update_project_price(db, price_id, body)


@router.delete("/v1/admin/project-prices/{price_id}", status_code=204, summary="Delete project price")
def admin_delete_project_price(price_id: PathId, caller: AdminCaller, db: DbSession) -> Response:
    """Return a project to the list price."""
    pricing.delete_project_price(db, price_id)
    return _no_content()


# ---- IP pools ------------------------------------------------------------------------------------

@router.get("/v1/admin/ip-pools", response_model=IpPoolList, summary="List IP pools")
def admin_list_pools(
    caller: AdminCaller,
    db: DbSession,
    region: Annotated[str | None, Query(max_length=64, description="Only this region's pools (its code).")] = None,
) -> IpPoolList:
    """IP pools with usable, reserved, allocated and available address counts."""
    return IpPoolList(ip_pools=networking.list_pools(db, region))


@router.get("/v1/admin/ip-pools/{pool_id}", response_model=IpPoolRead, summary="Get IP pool")
def admin_get_pool(pool_id: PathId, caller: AdminCaller, db: DbSession) -> IpPoolRead:
    """One IP pool with its address counts."""
    return networking.get_pool(db, pool_id)


@router.post("/v1/admin/ip-pools", status_code=201, response_model=IpPoolRead, summary="Create IP pool")
def admin_create_pool(body: IpPoolCreate, caller: AdminCaller, db: DbSession) -> IpPoolRead:
    """Add a block of addresses to a region (CIDR, gateway, reserved addresses)."""
    return networking.create_pool(db, body)


@router.put("/v1/admin/ip-pools/{pool_id}", response_model=IpPoolRead, summary="Update IP pool")
def admin_update_pool(pool_id: PathId, body: IpPoolUpdate, caller: AdminCaller, db: DbSession) -> IpPoolRead:
    """Change a pool's gateway, reserved addresses, name or availability."""
    return networking.update_pool(db, pool_id, body)


@router.delete("/v1/admin/ip-pools/{pool_id}", status_code=204, summary="Delete IP pool")
def admin_delete_pool(pool_id: PathId, caller: AdminCaller, db: DbSession) -> Response:
    """Remove a pool without allocated addresses."""
    networking.delete_pool(db, pool_id)
    return _no_content()
