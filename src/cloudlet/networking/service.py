"""Addresses for instances: allocated from a region's IP pools, released on delete, each with a PTR name.

An address is never handed out twice: ip_allocations.address is unique, each insert runs in a
savepoint and moves on to the next free address on a conflict, and on PostgreSQL the pool's row is
locked first so concurrent allocations in one pool queue instead of colliding (SQLite's writing
transactions are serialised already). When no pool of the region has a free address of the family,
allocate raises `Unavailable` (HTTP 503, code NO_FREE_ADDRESS): the region is out of capacity for now,
the request itself was fine and may succeed after an address is released or a pool added.
"""

from __future__ import annotations

import ipaddress
import re

from sqlalchemy.orm import Session

from cloudlet.catalog import service as catalog
from cloudlet.catalog.models import IpAllocation
from cloudlet.catalog.schemas import IpPoolRead
from cloudlet.kit.errors import Invalid, NotFound, Unavailable
from cloudlet.networking import repository
from cloudlet.networking.schemas import Allocation, IpFamily

_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_ROUNDS = 20  # rounds of "read free addresses, try them" per pool before giving up on conflicts
_BATCH = 4


def _version(family: IpFamily) -> int:
    return 4 if family is IpFamily.IPV4 else 6


def _family(address: str) -> IpFamily:
    return IpFamily.IPV4 if ipaddress.ip_address(address).version == 4 else IpFamily.IPV6


def normalize_hostname(text: str, field: str = "rdns") -> str:
    """A fully qualified host name, lower-cased and without a trailing dot; Invalid otherwise."""
    name = text.strip().lower().removesuffix(".")
    labels = name.split(".")
    if not name or len(name) > 253:
        raise Invalid(field, "A host name has 1 to 253 characters.")
    if len(labels) < 2:
        raise Invalid(field, f"{text!r} is not fully qualified (e.g. server1.example.com).")
    for label in labels:
        if not _LABEL.match(label):
            raise Invalid(field, f"{label!r} is not a valid label: 1-63 letters, digits or hyphens, "
                                 "not starting or ending with a hyphen.")
    if labels[-1].isdigit():
        raise Invalid(field, f"{text!r} looks like an address, not a host name.")
    return name


def default_rdns(hostname: str | None) -> str | None:
    """The PTR name an address gets from its instance's host name: the name when it is fully qualified."""
    if not hostname:
        return None
    try:
        return normalize_hostname(hostname, "hostname")
    except Invalid:
        return None


def _owner(owner: str) -> str:
    cleaned = owner.strip()
    if not cleaned or len(cleaned) > 64:
        raise Invalid("owner", "An owner reference has 1 to 64 characters.")
    return cleaned


def _read(row: IpAllocation, pool: IpPoolRead, rdns: str | None) -> Allocation:
    net = ipaddress.ip_network(pool.cidr)
    return Allocation(address=row.address, family=_family(row.address), prefix_length=net.prefixlen,
                      gateway=pool.gateway, pool_id=row.pool_id, owner=row.instance_id or "", rdns=rdns,
                      reverse_pointer=ipaddress.ip_address(row.address).reverse_pointer)


def _reads(session: Session, rows: list[IpAllocation]) -> list[Allocation]:
    names = repository.rdns_names(session, [r.address for r in rows])
    pools = {pool_id: catalog.get_pool(session, pool_id) for pool_id in {r.pool_id for r in rows}}
    return [_read(r, pools[r.pool_id], names.get(r.address)) for r in rows]


def _take(session: Session, pool: IpPoolRead, owner: str) -> IpAllocation | None:
    repository.lock_pool(session, pool.id)
    for _ in range(_ROUNDS):
        candidates = catalog.free_addresses(session, pool.id, limit=_BATCH)
        if not candidates:
            return None
        for address in candidates:
            row = repository.try_insert(session, pool.id, address, owner)
            if row is not None:
                return row
    return None


def allocate(session: Session, region: str, owner: str, family: IpFamily | str = IpFamily.IPV4, *,
             hostname: str | None = None) -> Allocation:
    """An address of the family from the region's active pools for owner (an instance id).

    Idempotent per owner and family: an owner that holds one already gets it back, so a retried
    provisioning step allocates nothing new. The address gets hostname as its reverse-DNS name when
    that is fully qualified. Raises Invalid for an unknown region or family, Unavailable when no
    pool of the region has a free address of the family.
    """
    try:
        wanted = IpFamily(family)
    except ValueError:
        raise Invalid("family", f"{family!r} is not an address family; use ipv4 or ipv6.") from None
    owner = _owner(owner)
    held = [r for r in repository.of_owner(session, owner) if _family(r.address) is wanted]
    if held:
        return _reads(session, held[:1])[0]
    pools = [p for p in catalog.list_pools(session, region)
             if p.is_active and p.version == _version(wanted) and p.available > 0]
    for pool in sorted(pools, key=lambda p: p.id):  # one lock order for everyone: no deadlocks
        row = _take(session, pool, owner)
        if row is not None:
            name = default_rdns(hostname)
            if name is not None:
                repository.set_rdns(session, row.address, name)
            return _read(row, pool, name)
    raise Unavailable(f"No free {wanted.value} address is left in region {region}.", code="NO_FREE_ADDRESS")


def release(session: Session, owner: str) -> list[str]:
    """Free every address owner holds, with their reverse-DNS names; the addresses freed (none is fine)."""
    rows = repository.of_owner(session, owner.strip())
    addresses = [r.address for r in rows]
    repository.delete_allocations(session, rows)
    return addresses


def allocations(session: Session, owner: str) -> list[Allocation]:
    """The addresses owner holds, oldest first."""
    return _reads(session, repository.of_owner(session, owner.strip()))


def _allocated(session: Session, address: str) -> IpAllocation:
    try:
        normal = str(ipaddress.ip_address(address.strip()))
    except ValueError:
        raise Invalid("address", f"{address!r} is not an IP address.") from None
    row = repository.by_address(session, normal)
    if row is None:
        raise NotFound("address", normal)
    return row


def get_allocation(session: Session, address: str) -> Allocation:
    """One allocated address; NotFound when it is not allocated."""
    return _reads(session, [_allocated(session, address)])[0]


def set_rdns(session: Session, address: str, name: str | None) -> Allocation:
    """Set the reverse-DNS name of an allocated address (a valid FQDN), or clear it with None or ""."""
    row = _allocated(session, address)
    repository.set_rdns(session, row.address, normalize_hostname(name) if name and name.strip() else None)
    return _reads(session, [row])[0]
