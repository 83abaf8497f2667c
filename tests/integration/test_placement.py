"""Placement: schedule() reserves room on the least loaded ready, uncordoned node of a region, in the
caller's transaction; release() gives it back once. Concurrent placements never over-commit a node."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from cloudlet import catalogue_file
from cloudlet.catalog import service as catalog
from cloudlet.catalog.schemas import RegionCreate
from cloudlet.drivers.base import NodeUnreachable
from cloudlet.drivers.fake import FakeDriver
from cloudlet.kit.errors import CloudletError, Invalid
from cloudlet.nodes import service as nodes
from cloudlet.nodes.schemas import NodeCreate, Overcommit, Resources
from cloudlet.nodes.service import NoCapacity
from cloudlet.surfaces.deps import Runtime

SMALL = Resources(vcpu=1, memory_mib=1024, disk_gib=10)


class DeadDriver(FakeDriver):
    """A node that stopped answering."""

    def list_guests(self) -> list:  # type: ignore[type-arg]
        raise NodeUnreachable("no route to host")


@pytest.fixture
def add_node(runtime: Runtime) -> Callable[..., int]:
    """Add a node in a region (made on first use) and heartbeat it ready; returns its id."""
    with runtime.db.session() as session:
        for code in ("fra1", "ams1"):
            catalog.create_region(session, RegionCreate(code=code, name=code, country="DE"))

    def add(name: str, *, region: str = "fra1", vcpu: int = 4, memory_mib: int = 8192, disk_gib: int = 100,
            cpu_ratio: float = 1.0, ready: bool = True) -> int:
        with runtime.db.session() as session:
            node = nodes.create_node(session, NodeCreate(
                name=name, uri=f"qemu+ssh://{name}.example.net/system", region=region,
                capacity=Resources(vcpu=vcpu, memory_mib=memory_mib, disk_gib=disk_gib),
                overcommit=Overcommit(cpu=cpu_ratio, memory=1, disk=1)))
            if ready:
                nodes.heartbeat(session, node.id, FakeDriver())
            return node.id
    return add


def test_schedule_reserves_capacity_and_release_gives_it_back(runtime: Runtime, add_node: Callable[..., int]) -> None:
    node_id = add_node("hv-1")
    with runtime.db.session() as session:
        reservation = nodes.schedule(session, "fra1", Resources(vcpu=2, memory_mib=2048, disk_gib=40), "instance:7")
    assert reservation.node_id == node_id and reservation.node_uri == "qemu+ssh://hv-1.example.net/system"
    assert reservation.holder == "instance:7" and reservation.released_at is None
    with runtime.db.session() as session:
        node = nodes.get_node(session, node_id)
        assert node.used == Resources(vcpu=2, memory_mib=2048, disk_gib=40) and node.reservations == 1
        assert node.free == Resources(vcpu=2, memory_mib=6144, disk_gib=60)
        released = nodes.release(session, reservation)
        assert released.released_at is not None
    with runtime.db.session() as session:
        again = nodes.release(session, reservation.id)  # idempotent: nothing is given back twice
        assert again.released_at == released.released_at
        node = nodes.get_node(session, node_id)
        assert node.used == Resources(vcpu=0, memory_mib=0, disk_gib=0) and node.reservations == 0


def test_a_rolled_back_transaction_reserves_nothing(runtime: Runtime, add_node: Callable[..., int]) -> None:
    node_id = add_node("hv-1")
    with pytest.raises(RuntimeError), runtime.db.session() as session:
        nodes.schedule(session, "fra1", SMALL)
        raise RuntimeError("the create failed after placement")
    with runtime.db.session() as session:
        assert nodes.get_node(session, node_id).reservations == 0


def test_the_least_loaded_node_with_room_is_chosen(runtime: Runtime, add_node: Callable[..., int]) -> None:
    first, second = add_node("hv-1"), add_node("hv-2")
    add_node("hv-elsewhere", region="ams1", vcpu=64, memory_mib=262144, disk_gib=4000)
    with runtime.db.session() as session:
        placed = [nodes.schedule(session, "fra1", SMALL).node_id for _ in range(4)]
    assert placed == [first, second, first, second]  # ties go to the older node, then load alternates
    with runtime.db.session() as session:
        # hv-1 is fuller in memory now: a large guest goes to hv-2 only if it fits there
        nodes.schedule(session, "fra1", Resources(vcpu=1, memory_mib=4096, disk_gib=10))
        big = nodes.schedule(session, "fra1", Resources(vcpu=1, memory_mib=6144, disk_gib=10))
    assert big.node_id in (first, second)
    with runtime.db.session() as session:
        room = {n.id: n.free for n in nodes.list_nodes(session)}
    assert all(free.memory_mib >= 0 for free in room.values())


def test_overcommit_lets_more_vcpus_than_cores(runtime: Runtime, add_node: Callable[..., int]) -> None:
    add_node("hv-1", vcpu=2, cpu_ratio=4.0, memory_mib=100_000)
    with runtime.db.session() as session:
        for _ in range(8):
            nodes.schedule(session, "fra1", SMALL)
        with pytest.raises(NoCapacity):
            nodes.schedule(session, "fra1", SMALL)


def test_cordoned_unreachable_and_other_region_nodes_take_nothing(runtime: Runtime,
                                                                 add_node: Callable[..., int]) -> None:
    cordoned, down = add_node("hv-cordoned"), add_node("hv-down")
    add_node("hv-new", ready=False)  # never answered a heartbeat
    add_node("hv-ams", region="ams1")
    with runtime.db.session() as session:
        nodes.cordon(session, cordoned)
        nodes.heartbeat(session, down, DeadDriver())
    with runtime.db.session() as session, pytest.raises(NoCapacity) as refused:
        nodes.schedule(session, "fra1", SMALL)
    assert refused.value.status == 503 and refused.value.code == "NO_CAPACITY"
    assert "fra1" in refused.value.message
    with runtime.db.session() as session:
        nodes.uncordon(session, cordoned)
        assert nodes.schedule(session, "fra1", SMALL).node_id == cordoned


def test_a_request_too_big_for_any_node_or_an_unknown_region_is_refused(runtime: Runtime,
                                                                        add_node: Callable[..., int]) -> None:
    add_node("hv-1")
    with runtime.db.session() as session:
        with pytest.raises(NoCapacity):
            nodes.schedule(session, "fra1", Resources(vcpu=1, memory_mib=1024, disk_gib=101))
        with pytest.raises(Invalid):
            nodes.schedule(session, "nowhere", SMALL)
        with pytest.raises(Invalid):
            nodes.schedule(session, "fra1", Resources(vcpu=0, memory_mib=1024, disk_gib=10))


def test_a_plan_is_placed_by_its_size(runtime: Runtime) -> None:
    with runtime.db.session() as session:
        catalogue_file.seed_default(session)
        plan = catalog.list_plans(session)[0]
        node = nodes.create_node(session, NodeCreate(
            name="hv-1", uri="qemu:///system", region=plan.regions[0],
            capacity=Resources(vcpu=8, memory_mib=16384, disk_gib=500)))
        nodes.heartbeat(session, node.id, FakeDriver())
    with runtime.db.session() as session:
        placed = nodes.schedule(session, plan.regions[0], nodes.resources_for_plan(plan))
    assert placed.node_id == node.id
    assert placed.resources == Resources(vcpu=plan.vcpu, memory_mib=plan.ram_mb, disk_gib=plan.disk_gb)


def test_parallel_placements_never_over_commit(runtime: Runtime, add_node: Callable[..., int]) -> None:
    room = 6
    node_id = add_node("hv-1", vcpu=room, memory_mib=room * 1024, disk_gib=room * 10)
    attempts = 24
    start = threading.Barrier(attempts)
    placed: list[int] = []
    refused: list[str] = []
    lock = threading.Lock()

    def place() -> None:
        start.wait()
        try:
            with runtime.db.session() as session:
                reservation = nodes.schedule(session, "fra1", SMALL)
            with lock:
                placed.append(reservation.id)
        except CloudletError as error:
            with lock:
                refused.append(type(error).__name__)

    threads = [threading.Thread(target=place) for _ in range(attempts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(placed) == room and refused == ["NoCapacity"] * (attempts - room)
    with runtime.db.session() as session:
        node = nodes.get_node(session, node_id)
    assert node.used == Resources(vcpu=room, memory_mib=room * 1024, disk_gib=room * 10)
    assert node.reservations == room and node.free == Resources(vcpu=0, memory_mib=0, disk_gib=0)
