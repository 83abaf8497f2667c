"""SQL of the networking domain: IP pools, the addresses allocated out of them, and their reverse DNS."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloudlet.kit.ids import in_range
from cloudlet.networking.models import IpAllocation, IpPool, ReverseDns

# ---- IP pools ------------------------------------------------------------------------------------


def pool(session: Session, pool_id: int) -> IpPool | None:
    """A pool by id, or None (ids out of INTEGER range included)."""
    return session.get(IpPool, pool_id) if in_range(pool_id) else None


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


def insert_pool(session: Session, row: IpPool) -> IpPool:
    """Add a pool and give it its id."""
    session.add(row)
    session.flush()
    return row


def delete_pool(session: Session, row: IpPool) -> None:
    """Remove a pool."""
    session.delete(row)
    session.flush()


def flush(session: Session) -> None:
    """Write pending changes so constraints are checked now."""
    session.flush()


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


# ---- allocations ---------------------------------------------------------------------------------


def lock_pool(session: Session, pool_id: int) -> None:
    """Hold the pool's row until the transaction ends (PostgreSQL; SQLite's write lock already serialises)."""
    session.execute(select(IpPool.id).where(IpPool.id == pool_id).with_for_update())


def try_insert(session: Session, pool_id: int, address: str, owner: str) -> IpAllocation | None:
    """Record the address as owner's; None when another transaction holds it already (unique address)."""
    row = IpAllocation(pool_id=pool_id, address=address, instance_id=owner)
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        return None
    return row


def of_owners(session: Session, owners: Sequence[str]) -> list[IpAllocation]:
    """The allocations these owners hold, oldest first."""
    return list(session.scalars(select(IpAllocation).where(IpAllocation.instance_id.in_(owners))
                                .order_by(IpAllocation.id)))


def of_owner(session: Session, owner: str) -> list[IpAllocation]:
    """The allocations an owner holds, oldest first."""
    return list(session.scalars(select(IpAllocation).where(IpAllocation.instance_id == owner)
                                .order_by(IpAllocation.id)))


def by_id(session: Session, allocation_id: int) -> IpAllocation | None:
    """One allocation by its id."""
    return session.get(IpAllocation, allocation_id)


def by_address(session: Session, address: str) -> IpAllocation | None:
    """The allocation of one address, if it is allocated."""
    return session.scalars(select(IpAllocation).where(IpAllocation.address == address)).first()


def delete_allocations(session: Session, rows: list[IpAllocation]) -> None:
    """Remove allocations and the reverse-DNS names of their addresses."""
    addresses = [r.address for r in rows]
    if not addresses:
        return
    session.execute(delete(ReverseDns).where(ReverseDns.address.in_(addresses)))
    session.execute(delete(IpAllocation).where(IpAllocation.id.in_([r.id for r in rows])))


def rdns_names(session: Session, addresses: list[str]) -> dict[str, str]:
    """The reverse-DNS names set for these addresses."""
    if not addresses:
        return {}
    rows = session.execute(select(ReverseDns.address, ReverseDns.name).where(ReverseDns.address.in_(addresses)))
    return {row.address: row.name for row in rows}


def set_rdns(session: Session, address: str, name: str | None) -> None:
    """Set (or with None remove) the reverse-DNS name of an address."""
    row = session.get(ReverseDns, address)
    if name is None:
        if row is not None:
            session.delete(row)
    elif row is None:
        session.add(ReverseDns(address=address, name=name))
    else:
        row.name = name
    session.flush()
