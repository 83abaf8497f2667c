"""SQL for the catalogue."""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloudlet.catalog.models import (
    BillingCycle,
    OsTemplate,
    Plan,
    PlanCategory,
    Region,
)
from cloudlet.kit.db import Base
from cloudlet.kit.ids import in_range

Row = TypeVar("Row", bound=Base)


def get(session: Session, model: type[Row], ident: int) -> Row | None:
    """A row by primary key, or None (ids out of INTEGER range included)."""
    return session.get(model, ident) if in_range(ident) else None


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
