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
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from cloudlet.catalog import service as catalog
from cloudlet.catalog.schemas import LoadReport, RegionRead, RegionUpdate
from cloudlet.kit.errors import Conflict, Invalid, NotFound, Unavailable
from cloudlet.networking import repository
from cloudlet.networking.models import IpAllocation, IpPool
from cloudlet.networking.schemas import (
    Allocation,
    IpFamily,
    IpPoolCreate,
    IpPoolRead,
    IpPoolUpdate,
    PoolEntry,
)

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
    return Allocation(id=row.id, address=row.address, family=_family(row.address), prefix_length=net.prefixlen,
                      gateway=pool.gateway, pool_id=row.pool_id, owner=row.instance_id or "", rdns=rdns,
                      reverse_pointer=ipaddress.ip_address(row.address).reverse_pointer)


def _reads(session: Session, rows: list[IpAllocation]) -> list[Allocation]:
    names = repository.rdns_names(session, [r.address for r in rows])
    pools = {pool_id: get_pool(session, pool_id) for pool_id in {r.pool_id for r in rows}}
    return [_read(r, pools[r.pool_id], names.get(r.address)) for r in rows]


def _take(session: Session, pool: IpPoolRead, owner: str) -> IpAllocation | None:
    repository.lock_pool(session, pool.id)
    for _ in range(_ROUNDS):
        candidates = free_addresses(session, pool.id, limit=_BATCH)
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
    pools = [p for p in list_pools(session, region)
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


def allocation_by_id(session: Session, allocation_id: int) -> Allocation:
    """One allocated address by its record's id; NotFound when no address has it."""
    row = repository.by_id(session, allocation_id)
    if row is None:
        raise NotFound("IP record", allocation_id)
    return _reads(session, [row])[0]


def allocations_of(session: Session, owners: Sequence[str]) -> list[Allocation]:
    """The addresses these owners hold, oldest first, in one query (whatever their number)."""
    return _reads(session, repository.of_owners(session, [owner.strip() for owner in owners])) if owners else []


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


# ---- IP pools ------------------------------------------------------------------------------------

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class _Span:
    first: int
    last: int  # inclusive


def _network(text: str, field: str = "cidr") -> IpNetwork:
    try:
        return ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as exc:
        raise Invalid(field, f"{text!r} is not a network in CIDR form (e.g. 203.0.113.0/24): {exc}.") from None


def _usable(net: IpNetwork) -> _Span:
    first, last = int(net.network_address), int(net.broadcast_address)
    if net.version == 4 and net.prefixlen <= 30:
        return _Span(first + 1, last - 1)  # the network and broadcast addresses
    if net.version == 6 and net.prefixlen <= 126:
        return _Span(first + 1, last)  # the subnet-router anycast address
    return _Span(first, last)


def _address(text: str, net: IpNetwork, field: str) -> int:
    try:
        addr = ipaddress.ip_address(text.strip())
    except ValueError:
        raise Invalid(field, f"{text!r} is not an IP address.") from None
    if addr not in net:
        raise Invalid(field, f"{text} is not inside {net}.")
    return int(addr)


def _reserved_spans(net: IpNetwork, gateway: str | None, reserved: list[str]) -> list[_Span]:
    spans: list[_Span] = []
    if gateway:
        spot = _address(gateway, net, "gateway")
        spans.append(_Span(spot, spot))
    for entry in reserved:
        if "/" in entry:
            inner = _network(entry, "reserved")
            if inner.version != net.version or not inner.subnet_of(net):  # type: ignore[arg-type]
                raise Invalid("reserved", f"{entry} is not inside {net}.")
            spans.append(_Span(int(inner.network_address), int(inner.broadcast_address)))
        else:
            spot = _address(entry, net, "reserved")
            spans.append(_Span(spot, spot))
    usable = _usable(net)
    clipped = [_Span(max(s.first, usable.first), min(s.last, usable.last)) for s in spans
               if s.last >= usable.first and s.first <= usable.last]
    merged: list[_Span] = []
    for span in sorted(clipped, key=lambda s: s.first):
        if merged and span.first <= merged[-1].last + 1:
            merged[-1] = _Span(merged[-1].first, max(merged[-1].last, span.last))
        else:
            merged.append(span)
    return merged


def _inside(spans: list[_Span], value: int) -> bool:
    return any(s.first <= value <= s.last for s in spans)


@dataclass(frozen=True)
class _PoolCount:
    usable: int
    reserved: int
    allocated: int

    @property
    def available(self) -> int:
        return max(0, self.usable - self.reserved - self.allocated)


def _count(pool: IpPool, allocated: list[str]) -> _PoolCount:
    net = _network(pool.cidr)
    usable = _usable(net)
    spans = _reserved_spans(net, pool.gateway, pool.reserved)
    taken = set()
    for text in allocated:
        value = int(ipaddress.ip_address(text))
        if usable.first <= value <= usable.last and not _inside(spans, value):
            taken.add(value)
    return _PoolCount(usable=usable.last - usable.first + 1, reserved=sum(s.last - s.first + 1 for s in spans),
                      allocated=len(taken))


def _available_by_region(session: Session) -> dict[int, int]:
    pools = [p for p in repository.pools(session) if p.is_active and _network(p.cidr).version == 4]
    allocated = repository.allocated_addresses(session, [p.id for p in pools])
    free: dict[int, int] = {}
    for pool in pools:
        free[pool.region_id] = free.get(pool.region_id, 0) + _count(pool, allocated[pool.id]).available
    return free


def _pool_read(pool: IpPool, region_code: str, allocated: list[str]) -> IpPoolRead:
    counts = _count(pool, allocated)
    return IpPoolRead(id=pool.id, region=region_code, name=pool.name, cidr=pool.cidr,
                      version=_network(pool.cidr).version, gateway=pool.gateway, reserved=list(pool.reserved),
                      is_active=pool.is_active, usable=counts.usable, reserved_count=counts.reserved,
                      allocated=counts.allocated, available=counts.available)


def list_pools(session: Session, region: str | None = None) -> list[IpPoolRead]:
    """IP pools with their address counts, of one region (by code) or of all."""
    if region:
        found = catalog.find_region(session, region)
        codes, pools = {found.id: found.code}, repository.pools(session, region_id=found.id)
    else:
        codes, pools = {r.id: r.code for r in catalog.list_regions(session)}, repository.pools(session)
    allocated = repository.allocated_addresses(session, [p.id for p in pools])
    return [_pool_read(p, codes[p.region_id], allocated[p.id]) for p in pools]


def gateways(session: Session) -> dict[str, frozenset[str]]:
    """Each region's (by code) pool gateway addresses: what the nodes of the region hold on their guests'
    network. Inactive pools too: their addresses may still be in use."""
    regions = {r.id: r.code for r in catalog.list_regions(session)}
    found: dict[str, set[str]] = {}
    for pool in repository.pools(session):
        if pool.gateway:
            found.setdefault(regions[pool.region_id], set()).add(pool.gateway)
    return {region: frozenset(addresses) for region, addresses in found.items()}


def _pool(session: Session, pool_id: int) -> IpPool:
    pool = repository.pool(session, pool_id)
    if pool is None:
        raise NotFound("IP pool", pool_id)
    return pool


def get_pool(session: Session, pool_id: int) -> IpPoolRead:
    """One IP pool with its address counts."""
    pool = _pool(session, pool_id)
    region = catalog.get_region(session, pool.region_id)
    return _pool_read(pool, region.code, repository.allocated_addresses(session, [pool.id])[pool.id])


def _check_pool(session: Session, cidr: str, gateway: str | None, reserved: list[str],
                pool_id: int | None) -> tuple[str, str | None, list[str]]:
    net = _network(cidr)
    if net.version == 4 and net.prefixlen < 8:
        raise Invalid("cidr", "An IPv4 pool is at most a /8.")
    for other in repository.pools(session):
        if other.id == pool_id:
            continue
        other_net = _network(other.cidr)
        if other_net.version == net.version and other_net.overlaps(net):
            raise Conflict(f"{net} overlaps pool {other.id} ({other.cidr}).")
    _reserved_spans(net, gateway, reserved)  # raises Invalid for an address outside the pool
    normal_gateway = str(ipaddress.ip_address(gateway.strip())) if gateway else None
    normal_reserved = [str(_network(r, "reserved")) if "/" in r else str(ipaddress.ip_address(r.strip()))
                       for r in reserved]
    return str(net), normal_gateway, normal_reserved


def create_pool(session: Session, data: IpPoolCreate) -> IpPoolRead:
    """Add a pool of addresses to a region; it may not overlap another pool."""
    region = catalog.find_region(session, data.region)
    cidr, gateway, reserved = _check_pool(session, data.cidr, data.gateway, data.reserved, None)
    pool = repository.insert_pool(session, IpPool(region_id=region.id, name=data.name, cidr=cidr, gateway=gateway,
                                                  reserved=reserved, is_active=data.is_active))
    return _pool_read(pool, region.code, [])


def update_pool(session: Session, pool_id: int, data: IpPoolUpdate) -> IpPoolRead:
    """Change a pool; its CIDR and region stay put while any of its addresses is allocated."""
    pool = _pool(session, pool_id)
    region = catalog.get_region(session, pool.region_id)
    allocated = repository.allocated_addresses(session, [pool.id])[pool.id]
    changes = data.model_dump(exclude_unset=True)
    if allocated and (changes.get("cidr", pool.cidr) != pool.cidr or
                      changes.get("region", region.code) != region.code):
        raise Conflict("This pool has allocated addresses; its CIDR and region cannot change.")
    reserved_now: list[str] = data.reserved if data.reserved is not None else list(pool.reserved)
    cidr, gateway, reserved = _check_pool(session, data.cidr or pool.cidr, changes.get("gateway", pool.gateway),
                                          reserved_now, pool.id)
    if changes.get("region"):
        region = catalog.find_region(session, changes["region"])
        pool.region_id = region.id
    pool.cidr, pool.gateway, pool.reserved = cidr, gateway, reserved
    if changes.get("name") is not None:
        pool.name = changes["name"]
    if changes.get("is_active") is not None:
        pool.is_active = changes["is_active"]
    repository.flush(session)
    return _pool_read(pool, region.code, allocated)


def delete_pool(session: Session, pool_id: int) -> None:
    """Remove a pool none of whose addresses is allocated."""
    pool = _pool(session, pool_id)
    if repository.allocated_addresses(session, [pool.id])[pool.id]:
        raise Conflict("This pool has allocated addresses; release them first or deactivate the pool.")
    repository.delete_pool(session, pool)


def free_addresses(session: Session, pool_id: int, *, limit: int = 1) -> list[str]:
    """Up to `limit` addresses of a pool that are neither gateway, reserved nor allocated, lowest first."""
    pool = _pool(session, pool_id)
    net = _network(pool.cidr)
    usable = _usable(net)
    spans = _reserved_spans(net, pool.gateway, pool.reserved)
    taken = {int(ipaddress.ip_address(a)) for a in repository.allocated_addresses(session, [pool.id])[pool.id]}
    found: list[str] = []
    value = usable.first
    while value <= usable.last and len(found) < limit:
        span = next((s for s in spans if s.first <= value <= s.last), None)
        if span is not None:
            value = span.last + 1
            continue
        if value not in taken:
            found.append(str(ipaddress.ip_address(value)))
        value += 1
    return found


# ---- regions, as the address plan sees them --------------------------------------------------------

def _with_addresses(region: RegionRead, free: dict[int, int]) -> RegionRead:
    return region.model_copy(update={"available_ips": free.get(region.id, 0)})


def list_regions(session: Session, *, available_only: bool = False) -> list[RegionRead]:
    """The catalogue's regions in display order, each with the IPv4 addresses it can still hand out."""
    free = _available_by_region(session)
    return [_with_addresses(r, free) for r in catalog.list_regions(session, available_only=available_only)]


def update_region(session: Session, region_id: int, data: RegionUpdate) -> RegionRead:
    """Change a region in the catalogue, read back with its free IPv4 addresses."""
    return _with_addresses(catalog.update_region(session, region_id, data), _available_by_region(session))


def delete_region(session: Session, region_id: int) -> None:
    """Remove a region from the catalogue; a region that still has IP pools is a Conflict."""
    region = catalog.get_region(session, region_id)
    if repository.pools_in_region(session, region.id):
        raise Conflict("This region still has IP pools; delete them first or mark the region unavailable.")
    catalog.delete_region(session, region.id)


# ---- catalogue files ----------------------------------------------------------------------------

def load_pools(session: Session, pools: list[PoolEntry], report: LoadReport) -> None:
    """Upsert a catalogue file's pools by CIDR, counting them in report; loading twice changes nothing."""
    for entry in pools:
        found = repository.pool_by_cidr(session, str(_network(entry.cidr)))
        bucket = report.updated if found is not None else report.created
        bucket["pools"] = bucket.get("pools", 0) + 1
        if found is None:
            create_pool(session, entry)
        else:
            # only the fields the file writes, so loading never resets what an operator changed
            update_pool(session, found.id, IpPoolUpdate(**entry.model_dump(exclude_unset=True, exclude={"cidr"})))
