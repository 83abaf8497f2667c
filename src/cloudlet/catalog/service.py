"""The catalogue: what can be bought, where, and with which OS, at USD list prices.

What it costs a project in a currency (exchange rates, project prices, cycle discounts applied) is
billing's (billing/pricing.py); a region's IP pools and free addresses are networking's.

    template_for_plan(session, template_id, plan) -> TemplateRead
        An OS template that can be built on the plan (NotFound / Invalid otherwise).
"""

from __future__ import annotations

from typing import Any, TypeVar

import yaml
from pydantic import BaseModel
from sqlalchemy.orm import Session

from cloudlet.catalog import repository
from cloudlet.catalog.defaults import DEFAULT_CATALOGUE
from cloudlet.catalog.models import (
    BillingCycle,
    OsTemplate,
    Plan,
    PlanCategory,
    Region,
)
from cloudlet.catalog.schemas import (
    CatalogueFile,
    CategoryCreate,
    CategoryRead,
    CategoryUpdate,
    CycleCreate,
    CycleRead,
    CycleUpdate,
    LoadReport,
    PlanCreate,
    PlanRead,
    PlanUpdate,
    RegionCreate,
    RegionRead,
    RegionUpdate,
    TemplateCreate,
    TemplateGroup,
    TemplateRead,
    TemplateUpdate,
)
from cloudlet.kit import money
from cloudlet.kit.errors import Conflict, Invalid, NotFound
from cloudlet.kit.ids import is_number

BASE = money.BASE_CURRENCY
NULLABLE_PLAN_FIELDS = frozenset({"bandwidth_mbit"})  # null lifts the cap


# ---- regions -------------------------------------------------------------------------------------

def list_regions(session: Session, *, available_only: bool = False) -> list[RegionRead]:
    """Regions in display order (networking.service.list_regions adds their free addresses)."""
    return [RegionRead.model_validate(r) for r in repository.regions(session, available_only=available_only)]


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
    return RegionRead.model_validate(_region(session, region_id))


def find_region(session: Session, code: str, field: str = "region") -> RegionRead:
    """A region by its code; Invalid (naming `field`) when there is none."""
    return RegionRead.model_validate(_region_by_code(session, code, field))


def create_region(session: Session, data: RegionCreate) -> RegionRead:
    """Add a region; its code must be new."""
    if repository.region_by_code(session, data.code) is not None:
        raise Conflict(f"A region with code {data.code!r} already exists.")
    return RegionRead.model_validate(repository.insert(session, Region(**data.model_dump())))


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
    """Remove a region nothing refers to any more; plans simply stop being offered there.

    The catalogue does not know what other domains keep in a region (IP pools, nodes): their foreign
    keys refuse the deletion, and networking.service.delete_region names the pools first.
    """
    region = _region(session, region_id)
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
        ram_mb=plan.ram_mb, disk_gb=plan.disk_gb, bandwidth_gb=plan.bandwidth_gb, bandwidth_mbit=plan.bandwidth_mbit,
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
                bandwidth_mbit=data.bandwidth_mbit, monthly_price=data.monthly_price_cents, is_active=data.is_active,
                sort_order=data.sort_order,
                regions=_plan_regions(session, data.regions))
    return _plan_read(repository.insert(session, plan))


def update_plan(session: Session, plan_id: int, data: PlanUpdate) -> PlanRead:
    """Change a plan. A new price applies to new orders and renewals; instances keep what they paid."""
    plan = _plan(session, plan_id)
    for key, value in data.model_dump(exclude_unset=True, exclude={"monthly_price", "monthly_price_cents"}).items():
        if value is None and key not in NULLABLE_PLAN_FIELDS:
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
    """Remove a plan and the project prices of it; a plan that instances use is a Conflict (deactivate it)."""
    # deleted instances keep their records and so their plan: the foreign key decides, in a savepoint
    if not repository.delete_unreferenced(session, _plan(session, plan_id)):
        raise Conflict("Instances use this plan; deactivate it (is_active: false) instead of deleting it.",
                       code="PLAN_IN_USE")


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
    digits = [int(part) for part in template.version.split(".") if is_number(part)]
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


# ---- catalogue files -----------------------------------------------------------------------------

class _ExactLoader(yaml.SafeLoader):
    """YAML whose decimals stay the text the operator typed, so "6.10" never passes through a float."""


_ExactLoader.add_constructor("tag:yaml.org,2002:float",
                             lambda loader, node: loader.construct_scalar(node))  # type: ignore[arg-type]


Catalogue = TypeVar("Catalogue", bound=CatalogueFile)


def parse_catalogue(text: str, schema: type[Catalogue]) -> Catalogue:
    """A catalogue file's YAML checked against schema (CatalogueFile or a domain's extension of it)."""
    try:
        raw: Any = yaml.load(text, Loader=_ExactLoader)  # noqa: S506  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise Invalid("file", f"The catalogue is not valid YAML: {exc}") from None
    return schema.model_validate(raw or {})


def _given(entry: BaseModel, *skip: str) -> dict[str, Any]:
    # What the file says of an existing entry: only the fields written there, so loading never
    # resets what an operator changed through the API and the file does not mention.
    return entry.model_dump(exclude_unset=True, exclude=set(skip))


def _upsert(session: Session, report: LoadReport, section: str, found: object | None) -> None:
    bucket = report.updated if found is not None else report.created
    bucket[section] = bucket.get(section, 0) + 1


def load_catalogue(session: Session, catalogue: CatalogueFile) -> LoadReport:
    """Create or update every entry of a catalogue by its code; loading twice changes nothing."""
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
    for template in catalogue.templates:
        found_template = repository.template_by_code(session, template.code)
        _upsert(session, report, "templates", found_template)
        if found_template is None:
            create_template(session, template)
        else:
            update_template(session, found_template.id, TemplateUpdate(
                **_given(template, "code", "min_balance")))
    return report


def is_empty(session: Session) -> bool:
    """Whether nothing has been put in the catalogue yet."""
    return repository.is_empty(session)


def seed_default(session: Session) -> LoadReport | None:
    """Load the default catalogue into an empty one, so a new installation can sell at once; else None."""
    if not repository.is_empty(session):
        return None
    return load_catalogue(session, DEFAULT_CATALOGUE)
