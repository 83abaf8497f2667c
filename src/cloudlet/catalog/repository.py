"""SQL for the catalogue."""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloudlet.catalog.models import (
    BillingCycle,
    ExchangeRate,
    IpAllocation,
    IpPool,
    OsTemplate,
    Plan,
    PlanCategory,
    ProjectPrice,
    Region,
)
from cloudlet.kit.db import Base

MAX_ID = 2**31 - 1  # PostgreSQL refuses to compare an INTEGER with a bigger number

Row = TypeVar("Row", bound=Base)


def get(session: Session, model: type[Row], ident: int) -> Row | None:
    """A row by primary key, or None (ids out of INTEGER range included)."""
    return session.get(model, ident) if 0 < ident <= MAX_ID else None


def insert(session: Session, row: Row) -> Row:
    """Add a row and give it its id."""
    session.add(row)
    session.flush()
    return row


def delete(session: Session, row: Base) -> None:
    """Remove a row."""
    session.delete(row)
    session.flush()


def delete_unreferenced(session: Session, row: Base) -> bool:
    """Remove a row unless another table still refers to it (then False, and nothing removed)."""
    try:
        with session.begin_nested():
            session.delete(row)
            session.flush()
    except IntegrityError:
        return False
    return True


def flush(session: Session) -> None:
    """Write pending changes so constraints are checked now."""
    session.flush()


def is_empty(session: Session) -> bool:
    """Whether no plan and no region exist yet (a new installation)."""
    plans = session.scalar(select(func.count()).select_from(Plan))
    regions = session.scalar(select(func.count()).select_from(Region))
    return not plans and not regions


# ---- regions -------------------------------------------------------------------------------------

def regions(session: Session, *, available_only: bool = False) -> list[Region]:
    """Regions in display order."""
    query = select(Region).order_by(Region.sort_order, Region.id)
    if available_only:
        query = query.where(Region.is_available.is_(True))
    return list(session.scalars(query))


def region_by_code(session: Session, code: str) -> Region | None:
    """A region by its code."""
    return session.scalars(select(Region).where(Region.code == code)).first()


def regions_by_codes(session: Session, codes: list[str]) -> list[Region]:
    """The regions with these codes (those that exist)."""
    if not codes:
        return []
    return list(session.scalars(select(Region).where(Region.code.in_(codes)).order_by(Region.sort_order)))


# ---- categories ----------------------------------------------------------------------------------

def categories(session: Session) -> list[PlanCategory]:
    """Plan categories in display order."""
    return list(session.scalars(select(PlanCategory).order_by(PlanCategory.sort_order, PlanCategory.id)))


def category_by_code(session: Session, code: str) -> PlanCategory | None:
    """A plan category by its code."""
    return session.scalars(select(PlanCategory).where(PlanCategory.code == code)).first()


def plans_in_category(session: Session, category_id: int) -> int:
    """How many plans a category holds."""
    return int(session.scalar(select(func.count()).select_from(Plan).where(Plan.category_id == category_id)) or 0)


# ---- plans ---------------------------------------------------------------------------------------

def plans(session: Session, *, active_only: bool = False) -> list[Plan]:
    """Plans in display order (category, then the plan's own order, then price)."""
    query = (select(Plan).join(PlanCategory, Plan.category_id == PlanCategory.id)
             .order_by(PlanCategory.sort_order, Plan.sort_order, Plan.monthly_price, Plan.id))
    if active_only:
        query = query.where(Plan.is_active.is_(True))
    return list(session.scalars(query).unique())


def plan_by_code(session: Session, code: str) -> Plan | None:
    """A plan by its code."""
    return session.scalars(select(Plan).where(Plan.code == code)).first()


# ---- billing cycles ------------------------------------------------------------------------------

def cycles(session: Session, *, active_only: bool = False) -> list[BillingCycle]:
    """Billing cycles, shortest first."""
    query = select(BillingCycle).order_by(BillingCycle.sort_order, BillingCycle.months, BillingCycle.id)
    if active_only:
        query = query.where(BillingCycle.is_active.is_(True))
    return list(session.scalars(query))


def cycle_by_code(session: Session, code: str) -> BillingCycle | None:
    """A billing cycle by its code."""
    return session.scalars(select(BillingCycle).where(BillingCycle.code == code)).first()


# ---- exchange rates ------------------------------------------------------------------------------

def rates(session: Session) -> list[ExchangeRate]:
    """Every stored rate, by currency code."""
    return list(session.scalars(select(ExchangeRate).order_by(ExchangeRate.currency)))


def rate_of(session: Session, currency: str) -> ExchangeRate | None:
    """The stored rate of a currency."""
    return session.scalars(select(ExchangeRate).where(ExchangeRate.currency == currency)).first()


# ---- OS templates --------------------------------------------------------------------------------

def templates(session: Session, *, active_only: bool = False) -> list[OsTemplate]:
    """OS templates in display order."""
    query = select(OsTemplate).order_by(OsTemplate.sort_order, OsTemplate.family, OsTemplate.id)
    if active_only:
        query = query.where(OsTemplate.is_active.is_(True))
    return list(session.scalars(query))


def template_by_code(session: Session, code: str) -> OsTemplate | None:
    """An OS template by its code."""
    return session.scalars(select(OsTemplate).where(OsTemplate.code == code)).first()


# ---- project prices ------------------------------------------------------------------------------

def project_prices(session: Session, project_id: int | None = None) -> list[ProjectPrice]:
    """Project prices, of one project or of all."""
    query = select(ProjectPrice).order_by(ProjectPrice.project_id, ProjectPrice.plan_id)
    if project_id is not None:
        query = query.where(ProjectPrice.project_id == project_id)
    return list(session.scalars(query))


def project_price(session: Session, project_id: int, plan_id: int) -> ProjectPrice | None:
    """A project's own price of one plan."""
    return session.scalars(select(ProjectPrice).where(ProjectPrice.project_id == project_id,
                                                      ProjectPrice.plan_id == plan_id)).first()


# ---- IP pools ------------------------------------------------------------------------------------

def pools(session: Session, *, region_id: int | None = None) -> list[IpPool]:
    """IP pools, of one region or of all."""
    query = select(IpPool).order_by(IpPool.region_id, IpPool.id)
    if region_id is not None:
        query = query.where(IpPool.region_id == region_id)
    return list(session.scalars(query))


def pool_by_cidr(session: Session, cidr: str) -> IpPool | None:
    """A pool by its (normalised) CIDR."""
    return session.scalars(select(IpPool).where(IpPool.cidr == cidr)).first()


def pools_in_region(session: Session, region_id: int) -> int:
    """How many pools a region has."""
    return int(session.scalar(select(func.count()).select_from(IpPool).where(IpPool.region_id == region_id)) or 0)


def allocated_addresses(session: Session, pool_ids: list[int]) -> dict[int, list[str]]:
    """The allocated addresses of each pool."""
    found: dict[int, list[str]] = {pool_id: [] for pool_id in pool_ids}
    if not pool_ids:
        return found
    rows = session.execute(select(IpAllocation.pool_id, IpAllocation.address)
                           .where(IpAllocation.pool_id.in_(pool_ids)))
    for pool_id, address in rows:
        found[pool_id].append(address)
    return found
