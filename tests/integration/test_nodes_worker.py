"""The node heartbeat: heartbeat_all over every node, and the scheduled DBOS workflow that runs it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from cloudlet.app import create_worker
from cloudlet.catalog import service as catalog
from cloudlet.catalog.schemas import RegionCreate
from cloudlet.drivers.base import HypervisorDriver, NodeUnreachable
from cloudlet.drivers.fake import FakeDriver
from cloudlet.nodes import service as nodes
from cloudlet.nodes import workflows
from cloudlet.nodes.models import NodeStatus
from cloudlet.nodes.schemas import NodeCreate, Resources
from cloudlet.surfaces.deps import Runtime

DOWN_HOST = "hv-down.example.net"


def fake_fleet(uri: str) -> HypervisorDriver:
    """Every node answers through a FakeDriver, except the one at DOWN_HOST, which refuses connections."""
    if DOWN_HOST in uri:
        raise NodeUnreachable(f"libvirt at {uri} is not reachable: connection refused")
    return FakeDriver()


@pytest.fixture
def fleet(runtime: Runtime) -> Iterator[dict[str, int]]:
    """Two nodes, neither heartbeated yet, with drivers from fake_fleet in the runtime (and its worker)."""
    ids = {}
    with runtime.db.session() as session:
        catalog.create_region(session, RegionCreate(code="fra1", name="Frankfurt 1", country="DE"))
        for name in ("hv-up", "hv-down"):
            ids[name] = nodes.create_node(session, NodeCreate(
                name=name, uri=f"qemu+ssh://{name}.example.net/system", region="fra1",
                capacity=Resources(vcpu=4, memory_mib=4096, disk_gib=100))).id
    previous = runtime.drivers.use(fake_fleet)
    try:
        yield ids
    finally:
        runtime.drivers.use(previous)


def statuses(runtime: Runtime) -> dict[str, NodeStatus]:
    """Each node's health by name."""
    with runtime.db.session(write=False) as session:
        return {node.name: node.health for node in nodes.list_nodes(session)}


def test_heartbeat_all_marks_each_node_by_whether_it_answers(runtime: Runtime, fleet: dict[str, int]) -> None:
    report = workflows.heartbeat_all(runtime.db, runtime.settings, runtime.drivers)
    assert report.ready == ["hv-up"] and report.unreachable == ["hv-down"]
    assert statuses(runtime) == {"hv-up": NodeStatus.READY, "hv-down": NodeStatus.UNREACHABLE}
    with runtime.db.session(write=False) as session:
        down = nodes.get_node(session, fleet["hv-down"])
    assert "connection refused" in down.status_reason and down.last_heartbeat_at is None

    # the dead node comes back: the next round marks it ready
    report = workflows.heartbeat_all(runtime.db, runtime.settings, nodes.Drivers(lambda _uri: FakeDriver()))
    assert sorted(report.ready) == ["hv-down", "hv-up"] and report.unreachable == []


def test_the_worker_runs_the_heartbeat_on_its_schedule(runtime: Runtime, fleet: dict[str, int]) -> None:
    worker = create_worker(runtime=runtime)
    assert workflows.SCHEDULE_NAME in {schedule.name for schedule in worker.schedules}
    try:
        worker.start()
        deadline = time.monotonic() + 30  # the schedule ticks every ten seconds
        while statuses(runtime).get("hv-up") != NodeStatus.READY:
            assert time.monotonic() < deadline, "no heartbeat tick marked the node ready"
            time.sleep(0.2)
    finally:
        worker.stop(grace_seconds=0)
    assert statuses(runtime)["hv-down"] == NodeStatus.UNREACHABLE
    with runtime.db.session(write=False) as session:
        assert nodes.inventory(session, fleet["hv-up"]).system.libvirt_uri == "qemu+ssh://hv-up.example.net/system"
