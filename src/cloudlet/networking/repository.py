"""SQL of the networking domain: rows of ip_allocations (the catalog's table) and their reverse DNS."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloudlet.catalog.models import IpAllocation, IpPool
from cloudlet.networking.models import ReverseDns


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


def of_owner(session: Session, owner: str) -> list[IpAllocation]:
    """The allocations an owner holds, oldest first."""
    return list(session.scalars(select(IpAllocation).where(IpAllocation.instance_id == owner)
                                .order_by(IpAllocation.id)))


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
