"""Nodes: the operator's hypervisor hosts, their health (heartbeat), inventory, and placement.

Placement is `schedule(session, region, resources)`: it locks the region's ready, uncordoned nodes
(SELECT ... FOR UPDATE on PostgreSQL; a writing SQLite transaction already holds the database's
write lock from BEGIN IMMEDIATE), picks the least loaded one with room, adds the request to the
node's `*_used` counters and records a reservation, all in the caller's transaction. Two placements
racing for the last room therefore serialise on the node row and the second sees the first's use.
`release(session, reservation)` gives the room back, once.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import socket
import threading
from collections.abc import Callable
from datetime import timedelta
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import NamedTuple

import structlog
from sqlalchemy.orm import Session

from cloudlet.catalog import service as catalog
from cloudlet.catalog.schemas import PlanRead, RegionRead
from cloudlet.config import Settings
from cloudlet.drivers.base import DriverError, GuestFailed, HypervisorDriver, NodeUnreachable, RetryLater
from cloudlet.kit import clock
from cloudlet.kit.errors import Conflict, Invalid, NotFound, Unauthenticated, Unavailable
from cloudlet.kit.ids import digest, new_secret
from cloudlet.networking import service as networking
from cloudlet.nodes import inventory as inventories
from cloudlet.nodes import repository
from cloudlet.nodes.models import Node, NodeRegistrationToken, NodeReservation, NodeStatus
from cloudlet.nodes.schemas import (
    DEFAULT_OVERCOMMIT,
    NOTHING,
    NodeCreate,
    NodeInventory,
    NodeRead,
    NodeRegister,
    NodeUpdate,
    Overcommit,
    RegistrationTokenCreate,
    RegistrationTokenRead,
    Reservation,
    Resources,
)

log = structlog.get_logger(__name__)

LOCAL_URI = "qemu:///system"
NODE_FILE = "node.json"  # written by `cloudlet node prepare` into facts_dir(data_dir)
POOL_DIR = "pool"
TWO_PLACES = Decimal("0.01")


DriverFactory = Callable[[str], HypervisorDriver]


def libvirt_driver(uri: str, firewall_table: str = "cloudlet") -> HypervisorDriver:
    """A LibvirtDriver connected to uri that keeps the guests' firewalls in firewall_table, one per URI and table
    per process (raises NodeUnreachable when libvirtd does not answer); a dropped connection is reopened by the
    driver itself."""
    with _drivers_lock:
        found = _libvirt_drivers.get((uri, firewall_table))
        if found is None:
            from cloudlet.drivers.libvirt.guest import LibvirtDriver  # libvirt is needed only where nodes run

            found = _libvirt_drivers[(uri, firewall_table)] = LibvirtDriver(uri, firewall_table=firewall_table)
        return found


def libvirt_drivers(settings: Settings) -> Drivers:
    """The libvirt drivers of a runtime with these settings."""
    return Drivers(functools.partial(libvirt_driver, firewall_table=settings.shield_table))


_drivers_lock = threading.Lock()
_libvirt_drivers: dict[tuple[str, str], HypervisorDriver] = {}


@atexit.register
def _close_drivers() -> None:
    # closed while the interpreter still runs, not by libvirt's __del__ once its module is torn down
    with _drivers_lock:
        for driver in _libvirt_drivers.values():
            close = getattr(driver, "close", None)
            if callable(close):
                close()
        _libvirt_drivers.clear()


class Drivers:
    """How this process's runtime turns node URIs into drivers (libvirt by default).

    The API side and the worker of a runtime share one, so a factory swapped in (a FakeDriver in tests)
    is seen by both at once.
    """

    def __init__(self, factory: DriverFactory = libvirt_driver) -> None:
        self._factory = factory

    def connect(self, uri: str) -> HypervisorDriver:
        """The driver of the node at uri (raises NodeUnreachable when the node does not answer)."""
        return self._factory(uri)

    def use(self, factory: DriverFactory) -> DriverFactory:
        """Make drivers with factory from now on; returns the factory used until now."""
        previous, self._factory = self._factory, factory
        return previous


class NoCapacity(Unavailable):
    """No ready, uncordoned node in the region has room for the request."""

    code = "NO_CAPACITY"


class NoNode(Unavailable):
    """No hypervisor node is registered at all: nothing can run a server, whatever its size."""

    code = "NO_NODE"


class NodeTarget(NamedTuple):
    """What the heartbeat needs to reach one node."""

    id: int
    name: str
    uri: str
    region: str  # its code


# -- reading


def _regions(session: Session) -> dict[int, RegionRead]:
    return {region.id: region for region in catalog.list_regions(session)}


def _region(session: Session, value: str | int) -> RegionRead:
    for region in catalog.list_regions(session):
        if region.id == value or region.code == value or str(region.id) == value:
            return region
    raise Invalid("region", f"There is no region {value!r}.")


def _capacity(node: Node) -> Resources:
    return Resources(vcpu=node.vcpu_total, memory_mib=node.memory_mib_total, disk_gib=node.disk_gib_total)


def _reserved(node: Node) -> Resources:
    return Resources(vcpu=node.vcpu_reserved, memory_mib=node.memory_mib_reserved, disk_gib=node.disk_gib_reserved)


def _used(node: Node) -> Resources:
    return Resources(vcpu=node.vcpu_used, memory_mib=node.memory_mib_used, disk_gib=node.disk_gib_used)


def _overcommit(node: Node) -> Overcommit:
    return Overcommit(cpu=float(node.cpu_ratio), memory=float(node.memory_ratio), disk=float(node.disk_ratio))


def _scaled(amount: int, ratio: Decimal, held: int) -> int:
    return max(0, int((Decimal(amount) * ratio).to_integral_value(rounding=ROUND_FLOOR)) - held)


def _allocatable(node: Node) -> Resources:
    return Resources(vcpu=_scaled(node.vcpu_total, Decimal(node.cpu_ratio), node.vcpu_reserved),
                     memory_mib=_scaled(node.memory_mib_total, Decimal(node.memory_ratio), node.memory_mib_reserved),
                     disk_gib=_scaled(node.disk_gib_total, Decimal(node.disk_ratio), node.disk_gib_reserved))


def _free(node: Node) -> Resources:
    room = _allocatable(node)
    return Resources(vcpu=max(0, room.vcpu - node.vcpu_used), memory_mib=max(0, room.memory_mib - node.memory_mib_used),
                     disk_gib=max(0, room.disk_gib - node.disk_gib_used))


def effective_status(node: Node) -> NodeStatus:
    """Unreachable beats cordoned beats ready."""
    if node.status == NodeStatus.UNREACHABLE.value:
        return NodeStatus.UNREACHABLE
    return NodeStatus.CORDONED if node.cordoned else NodeStatus.READY


def _read(node: Node, region: RegionRead | None, reservations: int) -> NodeRead:
    return NodeRead(
        id=node.id, name=node.name, uri=node.uri, region=region.code if region else "", region_id=node.region_id,
        status=effective_status(node), health=NodeStatus(node.status), cordoned=node.cordoned,
        status_reason=node.status_reason, capacity=_capacity(node), overcommit=_overcommit(node),
        reserved=_reserved(node), allocatable=_allocatable(node), used=_used(node), free=_free(node),
        reservations=reservations, last_heartbeat_at=node.last_heartbeat_at, inventory_at=node.inventory_at,
        created_at=node.created_at, updated_at=node.updated_at,
    )


def _node(session: Session, node_id: int, *, lock: bool = False) -> Node:
    node = repository.node(session, node_id, lock=lock)
    if node is None:
        raise NotFound("node", node_id)
    return node


def _answer(session: Session, node: Node) -> NodeRead:
    repository.flush(session)
    region = _regions(session).get(node.region_id)
    return _read(node, region, repository.open_reservations(session, node.id))


def list_nodes(session: Session) -> list[NodeRead]:
    """Every node, oldest first."""
    regions, open_counts = _regions(session), repository.open_reservations_by_node(session)
    return [_read(node, regions.get(node.region_id), open_counts.get(node.id, 0))
            for node in repository.nodes(session)]


def get_node(session: Session, node_id: int) -> NodeRead:
    """One node."""
    return _answer(session, _node(session, node_id))


def node_targets(session: Session) -> list[NodeTarget]:
    """Every node's id, name, libvirt URI and region (what the heartbeat connects to)."""
    regions = _regions(session)
    return [NodeTarget(node.id, node.name, node.uri, regions[node.region_id].code)
            for node in repository.nodes(session)]


# -- writing


def _ratio(value: float) -> Decimal:
    return Decimal(str(value)).quantize(TWO_PLACES)


def _apply_sizes(node: Node, capacity: Resources | None, overcommit: Overcommit | None,
                 reserved: Resources | None) -> None:
    if capacity is not None:
        node.vcpu_total, node.memory_mib_total, node.disk_gib_total = (capacity.vcpu, capacity.memory_mib,
                                                                       capacity.disk_gib)
    if overcommit is not None:
        node.cpu_ratio, node.memory_ratio, node.disk_ratio = (_ratio(overcommit.cpu), _ratio(overcommit.memory),
                                                              _ratio(overcommit.disk))
    if reserved is not None:
        node.vcpu_reserved, node.memory_mib_reserved, node.disk_gib_reserved = (reserved.vcpu, reserved.memory_mib,
                                                                                reserved.disk_gib)


def _check_name(session: Session, name: str, node_id: int | None = None) -> None:
    existing = repository.node_by_name(session, name)
    if existing is not None and existing.id != node_id:
        raise Conflict(f"A node named {name!r} already exists.")


def create_node(session: Session, data: NodeCreate) -> NodeRead:
    """Add a node; it is unreachable (and takes no guests) until its first heartbeat answers."""
    _check_name(session, data.name)
    region = _region(session, data.region)
    node = Node(name=data.name, uri=data.uri, region_id=region.id, status=NodeStatus.UNREACHABLE.value,
                cordoned=False, status_reason="waiting for the first heartbeat", inventory={},
                vcpu_used=0, memory_mib_used=0, disk_gib_used=0)
    _apply_sizes(node, data.capacity, data.overcommit, data.reserved)
    repository.insert(session, node)
    return _read(node, region, 0)


def create_registration_token(session: Session, user_id: int | None,
                              data: RegistrationTokenCreate | None = None) -> RegistrationTokenRead:
    """A single-use token a new node presents to register itself; only its digest is kept."""
    data = data or RegistrationTokenCreate()
    plaintext = f"cln_{new_secret()}"
    row = repository.insert(session, NodeRegistrationToken(
        token_digest=digest(plaintext), created_by=user_id,
        expires_at=clock.now() + timedelta(minutes=data.expires_in_minutes)))
    return RegistrationTokenRead(id=row.id, token=plaintext, expires_at=row.expires_at)


def register_node(session: Session, data: NodeRegister) -> NodeRead:
    """Add a node that presents a registration token; the token is spent, even by a second try."""
    token = repository.token_by_digest(session, digest(data.registration_token), lock=True)
    if token is None or token.used_at is not None or token.expires_at <= clock.now():
        raise Unauthenticated("The registration token is invalid, already used or expired.")
    node = create_node(session, NodeCreate.model_validate(data.model_dump(exclude={"registration_token"})))
    token.used_at, token.node_id = clock.now(), node.id
    repository.flush(session)
    return node


def update_node(session: Session, node_id: int, data: NodeUpdate) -> NodeRead:
    """Change a node's name, URI, region or sizes; guests already placed stay where they are.

    Shrinking a node below what is already used is allowed: it simply takes no new guests until
    enough are gone. Moving a node that holds guests to another region is refused.
    """
    node = _node(session, node_id, lock=True)
    if data.name is not None:
        _check_name(session, data.name, node.id)
        node.name = data.name
    if data.uri is not None:
        node.uri = data.uri
    if data.region is not None:
        region = _region(session, data.region)
        if region.id != node.region_id and repository.open_reservations(session, node.id):
            raise Conflict("A node with guests on it cannot move to another region.")
        node.region_id = region.id
    _apply_sizes(node, data.capacity, data.overcommit, data.reserved)
    return _answer(session, node)


def delete_node(session: Session, node_id: int) -> None:
    """Remove a node; refused while anything is placed on it."""
    node = _node(session, node_id, lock=True)
    if repository.open_reservations(session, node.id):
        raise Conflict("The node still has guests placed on it; move or delete them first.")
    repository.delete_released(session, node.id)
    repository.delete(session, node)


def cordon(session: Session, node_id: int) -> NodeRead:
    """Stop placing new guests on a node (those on it keep running). Idempotent."""
    node = _node(session, node_id, lock=True)
    node.cordoned = True
    return _answer(session, node)


def uncordon(session: Session, node_id: int) -> NodeRead:
    """Place guests on a node again (if it is reachable). Idempotent."""
    node = _node(session, node_id, lock=True)
    node.cordoned = False
    return _answer(session, node)


# -- health and inventory


def inventory(session: Session, node_id: int) -> NodeInventory:
    """The node's inventory as the last heartbeat or refresh read it."""
    node = _node(session, node_id)
    if not node.inventory:
        raise NotFound("inventory of node", node_id)
    return NodeInventory.model_validate(node.inventory)


def refresh_inventory(session: Session, node_id: int, driver: HypervisorDriver,
                      pool_dir: Path | None = None) -> NodeInventory:
    """Ask the driver what the node has now and cache it; raises the driver's errors."""
    node = _node(session, node_id)
    found = inventories.collect(driver, node.uri, pool_dir if inventories.is_local(node.uri) else None)
    node.inventory, node.inventory_at = found.model_dump(mode="json"), found.collected_at
    repository.flush(session)
    return found


def mark_unreachable(session: Session, node_id: int, reason: str) -> NodeRead:
    """Record that a node did not answer: it takes no new guests until a heartbeat succeeds."""
    node = _node(session, node_id, lock=True)
    node.status, node.status_reason = NodeStatus.UNREACHABLE.value, reason[:500]
    return _answer(session, node)


class Probe(NamedTuple):
    """What asking a node's driver found: an inventory, or why there is none (unreachable or busy)."""

    inventory: NodeInventory | None = None
    unreachable: str | None = None
    busy: str | None = None


def probe(driver: HypervisorDriver, uri: str, pool_dir: Path | None = None,
          gateways: frozenset[str] = frozenset()) -> Probe:
    """Ask a node's driver what runs there, outside any transaction (a slow node holds no lock), after making
    sure it holds the gateways of its region's address pools (so it reaches its guests). A gateway it cannot
    take is logged, not held against the node: its guests of other pools still run."""
    try:
        driver.serve_gateways(gateways)
    except GuestFailed as refused:
        log.warning("node did not take its pools' gateways", uri=uri, reason=refused.reason)
    try:
        return Probe(inventory=inventories.collect(driver, uri, pool_dir if inventories.is_local(uri) else None))
    except RetryLater as busy:
        return Probe(busy=busy.reason)
    except NodeUnreachable as error:
        return Probe(unreachable=str(error) or "the node did not answer")
    except DriverError as error:
        return Probe(unreachable=f"the node answered with an error: {error}")


def record_heartbeat(session: Session, node_id: int, found: Probe) -> NodeRead:
    """Store a probe's outcome: ready with a fresh inventory, unreachable, or (busy) the status it had."""
    if found.unreachable is not None:
        return mark_unreachable(session, node_id, found.unreachable)
    node = _node(session, node_id, lock=True)
    if found.inventory is None:
        node.status_reason = f"busy: {found.busy}"[:500]
        return _answer(session, node)
    node.status, node.status_reason = NodeStatus.READY.value, ""
    node.last_heartbeat_at = clock.now()
    node.inventory, node.inventory_at = found.inventory.model_dump(mode="json"), found.inventory.collected_at
    return _answer(session, node)


def heartbeat(session: Session, node_id: int, driver: HypervisorDriver, pool_dir: Path | None = None) -> NodeRead:
    """Ask the node's driver what runs there: ready (with a fresh inventory) if it answers, else unreachable.

    A busy node (RetryLater) keeps its status; the next heartbeat asks again.
    """
    node = _node(session, node_id)
    region = _regions(session)[node.region_id].code
    found = probe(driver, node.uri, pool_dir, networking.gateways(session).get(region, frozenset()))
    return record_heartbeat(session, node_id, found)


# -- the local node


def local_capacity(settings: Settings) -> Resources:
    """This machine's vCPUs, memory and the disk of the pool's filesystem."""
    disk_gib = shutil.disk_usage(inventories.existing(settings.data_dir / POOL_DIR)).total // 1024**3
    return Resources(vcpu=os.cpu_count() or 1, memory_mib=inventories.total_memory_mib(), disk_gib=disk_gib)


def ensure_local_node(session: Session, settings: Settings) -> NodeRead | None:
    """Register this machine (qemu:///system, the first region) when no node exists yet; None otherwise.

    The first heartbeat then marks it ready. Nothing happens without a region to put it in.
    """
    if repository.count_nodes(session):
        return None
    regions = catalog.list_regions(session)
    if not regions:
        return None
    name = "".join(c if c.isalnum() or c in "._-" else "-" for c in socket.gethostname())[:100].lstrip("._-")
    return create_node(session, NodeCreate(name=name or "local", uri=LOCAL_URI, region=regions[0].id,
                                           capacity=local_capacity(settings), overcommit=DEFAULT_OVERCOMMIT,
                                           reserved=NOTHING))


def facts_dir(data_dir: Path) -> Path:
    """Where `cloudlet node prepare` records this machine's node facts (node.json), and where `serve`
    looks for them: the installation's data directory, the one place both agree on.

    Not beside the libvirt pool: a second installation on a host finds the first one's pool there,
    and its own `serve` would never see the facts, so never register its node.
    """
    return data_dir


def libvirt_prepared(settings: Settings) -> bool:
    """Whether `cloudlet node prepare` ran for this installation (it writes node.json into facts_dir)."""
    return (facts_dir(settings.data_dir) / NODE_FILE).exists()


# -- placement


def resources_for_plan(plan: PlanRead) -> Resources:
    """The capacity one server of a plan takes."""
    return Resources(vcpu=plan.vcpu, memory_mib=plan.ram_mb, disk_gib=plan.disk_gb)


def _fits(node: Node, need: Resources) -> bool:
    free = _free(node)
    return free.vcpu >= need.vcpu and free.memory_mib >= need.memory_mib and free.disk_gib >= need.disk_gib


def _load(node: Node) -> float:
    room = _allocatable(node)
    shares = [used / total for used, total in ((node.vcpu_used, room.vcpu), (node.memory_mib_used, room.memory_mib),
                                               (node.disk_gib_used, room.disk_gib)) if total > 0]
    return max(shares, default=1.0)


def _reservation(row: NodeReservation, node: Node) -> Reservation:
    return Reservation(id=row.id, node_id=node.id, node_name=node.name, node_uri=node.uri, region_id=node.region_id,
                       resources=Resources(vcpu=row.vcpu, memory_mib=row.memory_mib, disk_gib=row.disk_gib),
                       holder=row.holder, created_at=row.created_at, released_at=row.released_at)


def schedule(session: Session, region: str | int, resources: Resources, holder: str = "") -> Reservation:
    """Reserve room for resources on the least loaded ready, uncordoned node of a region.

    Call it in a writing transaction; the reservation holds when that transaction commits. Raises
    Invalid for an unknown region or an empty request and NoCapacity when no node has room.
    """
    if resources.vcpu < 1 or resources.memory_mib < 1 or resources.disk_gib < 1:
        raise Invalid("resources", "A guest needs at least 1 vCPU, 1 MiB of memory and 1 GiB of disk.")
    where = _region(session, region)
    candidates = [node for node in repository.schedulable(session, where.id) if _fits(node, resources)]
    if not candidates and not repository.count_nodes(session):
        raise NoNode("No hypervisor node is registered, so no server can be created yet. An operator runs "
                     "`cloudlet node prepare` on a host (then `cloudlet serve` registers it) or adds a node "
                     "through the API.")
    if not candidates:
        raise NoCapacity(f"No node in region {where.code} has room for {resources.vcpu} vCPU, "
                         f"{resources.memory_mib} MiB of memory and {resources.disk_gib} GiB of disk.")
    node = min(candidates, key=lambda n: (_load(n), n.id))
    node.vcpu_used += resources.vcpu
    node.memory_mib_used += resources.memory_mib
    node.disk_gib_used += resources.disk_gib
    row = repository.insert(session, NodeReservation(node_id=node.id, vcpu=resources.vcpu,
                                                     memory_mib=resources.memory_mib, disk_gib=resources.disk_gib,
                                                     holder=holder[:200]))
    return _reservation(row, node)


def release(session: Session, reservation: Reservation | int) -> Reservation:
    """Give a reservation's room back to its node; releasing it again changes nothing."""
    reservation_id = reservation if isinstance(reservation, int) else reservation.id
    row = repository.reservation(session, reservation_id)
    if row is None:
        raise NotFound("reservation", reservation_id)
    node = _node(session, row.node_id, lock=True)  # the node row first, as schedule() locks it
    row = repository.reservation(session, reservation_id, lock=True)
    if row is None:  # pragma: no cover - reservations of a node are never deleted while open
        raise NotFound("reservation", reservation_id)
    if row.released_at is None:
        node.vcpu_used = max(0, node.vcpu_used - row.vcpu)
        node.memory_mib_used = max(0, node.memory_mib_used - row.memory_mib)
        node.disk_gib_used = max(0, node.disk_gib_used - row.disk_gib)
        row.released_at = clock.now()
        repository.flush(session)
    return _reservation(row, node)


def resize_reservation(session: Session, reservation_id: int, resources: Resources) -> Reservation:
    """Make an open reservation hold `resources` on the same node (a resize); NoCapacity when the node lacks
    the extra room. Idempotent: resizing to what it holds changes nothing. Call it in a writing transaction."""
    row = repository.reservation(session, reservation_id)
    if row is None:
        raise NotFound("reservation", reservation_id)
    node = _node(session, row.node_id, lock=True)  # the node row first, as schedule() and release() lock it
    row = repository.reservation(session, reservation_id, lock=True)
    if row is None:  # pragma: no cover - reservations of a node are never deleted while open
        raise NotFound("reservation", reservation_id)
    if row.released_at is not None:
        raise Conflict("The reservation was released; there is nothing to resize.")
    extra = Resources(vcpu=max(0, resources.vcpu - row.vcpu), memory_mib=max(0, resources.memory_mib - row.memory_mib),
                      disk_gib=max(0, resources.disk_gib - row.disk_gib))
    if not _fits(node, extra):
        raise NoCapacity(f"Node {node.name} has no room for {extra.vcpu} more vCPU, {extra.memory_mib} MiB of memory "
                         f"and {extra.disk_gib} GiB of disk.")
    node.vcpu_used = max(0, node.vcpu_used + resources.vcpu - row.vcpu)
    node.memory_mib_used = max(0, node.memory_mib_used + resources.memory_mib - row.memory_mib)
    node.disk_gib_used = max(0, node.disk_gib_used + resources.disk_gib - row.disk_gib)
    row.vcpu, row.memory_mib, row.disk_gib = resources.vcpu, resources.memory_mib, resources.disk_gib
    repository.flush(session)
    return _reservation(row, node)


def get_reservation(session: Session, reservation_id: int) -> Reservation:
    """One reservation, open or released."""
    row = repository.reservation(session, reservation_id)
    if row is None:
        raise NotFound("reservation", reservation_id)
    return _reservation(row, _node(session, row.node_id))
