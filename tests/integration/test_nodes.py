"""Nodes: the Shardlyn /v1/nodes API, registration tokens, heartbeat and inventory, the local node."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from cloudlet import catalogue_file
from cloudlet.catalog import service as catalog
from cloudlet.catalog.schemas import RegionCreate
from cloudlet.drivers.base import GuestSpec, NodeUnreachable
from cloudlet.drivers.fake import FakeDriver
from cloudlet.kit import clock
from cloudlet.nodes import service as nodes
from cloudlet.nodes.models import NodeRegistrationToken, NodeStatus
from cloudlet.nodes.schemas import Resources
from cloudlet.surfaces.deps import Runtime
from tests.conftest import Api
from tests.helpers import Person, make_user

NODE = {"name": "hv-1", "uri": "qemu+ssh://root@hv1.example.net/system", "region": "fra1",
        "capacity": {"vcpu": 16, "memory_mib": 65536, "disk_gib": 1000},
        "overcommit": {"cpu": 4, "memory": 1.5, "disk": 1}, "reserved": {"vcpu": 2, "memory_mib": 4096, "disk_gib": 50}}


class DeadDriver(FakeDriver):
    """A FakeDriver whose node stopped answering, as LibvirtDriver reports a dead libvirtd."""

    def list_guests(self) -> list:  # type: ignore[type-arg]
        raise NodeUnreachable("libvirt at qemu+ssh://hv1 is not reachable: connection refused")


@pytest.fixture
def admin(runtime: Runtime) -> Person:
    with runtime.db.session() as session:
        catalog.create_region(session, RegionCreate(code="fra1", name="Frankfurt 1", country="DE"))
        catalog.create_region(session, RegionCreate(code="ams1", name="Amsterdam 1", country="NL"))
    return make_user(runtime, "ops@example.com", admin=True)


def test_an_admin_adds_a_node_that_waits_for_its_first_heartbeat(api: Api, admin: Person) -> None:
    reply = api.as_(admin.token).post("/v1/nodes", json=NODE)
    assert reply.status_code == 201, reply.text
    node = reply.json()
    assert node["name"] == "hv-1" and node["region"] == "fra1"
    assert node["status"] == "unreachable" and node["last_heartbeat_at"] is None
    assert node["capacity"] == {"vcpu": 16, "memory_mib": 65536, "disk_gib": 1000}
    assert node["overcommit"] == {"cpu": 4.0, "memory": 1.5, "disk": 1.0}
    # capacity x overcommit - reserved
    assert node["allocatable"] == {"vcpu": 62, "memory_mib": 94208, "disk_gib": 950}
    assert node["free"] == node["allocatable"] and node["reservations"] == 0

    listed = api.as_(admin.token).get("/v1/nodes").json()["nodes"]
    assert [n["id"] for n in listed] == [node["id"]]
    assert api.as_(admin.token).get(f"/v1/nodes/{node['id']}").json()["uri"] == NODE["uri"]


@pytest.mark.parametrize("uri", ["http://hv1/system", "qemu://hv1/system", "qemu+ssh:///system",
                                 "qemu+tcp://hv1/system", "qemu:///nope", "lxc:///system"])
def test_a_libvirt_uri_must_be_local_ssh_or_tls(api: Api, admin: Person, uri: str) -> None:
    reply = api.as_(admin.token).post("/v1/nodes", json={**NODE, "uri": uri})
    assert reply.status_code == 400
    assert "uri" in reply.json()["error"] or "libvirt URI" in reply.json()["error"]


def test_bad_node_bodies_are_400s_and_names_are_unique(api: Api, admin: Person) -> None:
    client = api.as_(admin.token)
    assert client.post("/v1/nodes", json={**NODE, "region": "nowhere"}).status_code == 400
    assert client.post("/v1/nodes", json={**NODE, "overcommit": {"cpu": 0, "memory": 1, "disk": 1}}).status_code == 400
    assert client.post("/v1/nodes", json={**NODE, "capacity": {"vcpu": -1, "memory_mib": 1, "disk_gib": 1}}
                       ).status_code == 400
    assert client.post("/v1/nodes", json=NODE).status_code == 201
    clash = client.post("/v1/nodes", json={**NODE, "uri": "qemu:///system"})
    assert clash.status_code == 409 and "already exists" in clash.json()["error"]


def test_nodes_are_for_administrators_only(api: Api, admin: Person, runtime: Runtime) -> None:
    customer = make_user(runtime, "customer@example.com")
    assert api.as_(customer.token).get("/v1/nodes").status_code == 403
    assert api.as_(customer.token).post("/v1/nodes", json=NODE).status_code == 403
    assert api.as_(customer.token).post("/v1/nodes/register-token").status_code == 403
    assert api.get("/v1/nodes").status_code == 401


def test_update_changes_only_what_is_sent(api: Api, admin: Person) -> None:
    client = api.as_(admin.token)
    node_id = client.post("/v1/nodes", json=NODE).json()["id"]
    reply = client.put(f"/v1/nodes/{node_id}", json={"name": "hv-one", "region": "ams1",
                                                     "overcommit": {"cpu": 2, "memory": 1, "disk": 1},
                                                     "uri": "qemu+tls://hv1.example.net/system"})
    assert reply.status_code == 200, reply.text
    node = reply.json()
    assert (node["name"], node["region"], node["uri"]) == ("hv-one", "ams1", "qemu+tls://hv1.example.net/system")
    assert node["capacity"] == NODE["capacity"] and node["allocatable"]["vcpu"] == 16 * 2 - 2
    assert client.put(f"/v1/nodes/{node_id}", json={"uri": "ftp://x"}).status_code == 400
    assert client.put("/v1/nodes/999999", json={"name": "x"}).status_code == 404


def test_cordon_and_uncordon(api: Api, admin: Person, runtime: Runtime) -> None:
    client = api.as_(admin.token)
    node_id = client.post("/v1/nodes", json=NODE).json()["id"]
    with runtime.db.session() as session:
        nodes.heartbeat(session, node_id, FakeDriver())
    assert client.get(f"/v1/nodes/{node_id}").json()["status"] == "ready"
    cordoned = client.post(f"/v1/nodes/{node_id}/cordon").json()
    assert (cordoned["status"], cordoned["cordoned"], cordoned["health"]) == ("cordoned", True, "ready")
    assert client.post(f"/v1/nodes/{node_id}/cordon").json()["status"] == "cordoned"  # idempotent
    assert client.post(f"/v1/nodes/{node_id}/uncordon").json()["status"] == "ready"
    assert client.post("/v1/nodes/424242/cordon").status_code == 404


def test_delete_is_refused_while_capacity_is_reserved(api: Api, admin: Person, runtime: Runtime) -> None:
    client = api.as_(admin.token)
    node_id = client.post("/v1/nodes", json=NODE).json()["id"]
    with runtime.db.session() as session:
        nodes.heartbeat(session, node_id, FakeDriver())
        reservation = nodes.schedule(session, "fra1", Resources(vcpu=2, memory_mib=2048, disk_gib=20), "instance:1")
    refused = client.delete(f"/v1/nodes/{node_id}")
    assert refused.status_code == 409 and "guests" in refused.json()["error"]
    with runtime.db.session() as session:
        nodes.release(session, reservation)
    assert client.delete(f"/v1/nodes/{node_id}").status_code == 204
    assert client.get(f"/v1/nodes/{node_id}").status_code == 404
    assert client.delete(f"/v1/nodes/{node_id}").status_code == 404


def test_a_registration_token_registers_one_node_once(api: Api, admin: Person, runtime: Runtime) -> None:
    issued = api.as_(admin.token).post("/v1/nodes/register-token", json={"expires_in_minutes": 30})
    assert issued.status_code == 201
    token = issued.json()["token"]
    with runtime.db.session() as session:
        stored = session.get(NodeRegistrationToken, issued.json()["id"])
        assert stored is not None and token not in stored.token_digest and len(stored.token_digest) == 64

    body = {**NODE, "registration_token": token}
    first = api.post("/v1/nodes/register", json=body)
    assert first.status_code == 201, first.text
    assert first.json()["name"] == "hv-1"
    again = api.post("/v1/nodes/register", json={**body, "name": "hv-2"})
    assert again.status_code == 401 and "already used" in again.json()["error"]
    assert api.post("/v1/nodes/register", json={**body, "name": "hv-3", "registration_token": "guess"}
                    ).status_code == 401
    assert [n["name"] for n in api.as_(admin.token).get("/v1/nodes").json()["nodes"]] == ["hv-1"]


def test_an_expired_registration_token_is_refused(api: Api, admin: Person) -> None:
    token = api.as_(admin.token).post("/v1/nodes/register-token").json()["token"]  # default: one hour
    with clock.travel(timedelta(minutes=61)):
        reply = api.post("/v1/nodes/register", json={**NODE, "registration_token": token})
    assert reply.status_code == 401 and "expired" in reply.json()["error"]


def test_heartbeat_marks_a_node_ready_then_unreachable_and_caches_the_inventory(
        api: Api, admin: Person, runtime: Runtime, tmp_path: Path) -> None:
    client = api.as_(admin.token)
    node_id = client.post("/v1/nodes", json=NODE).json()["id"]
    assert client.get(f"/v1/nodes/{node_id}/inventory").status_code == 404  # nothing read yet

    driver = FakeDriver()
    image = tmp_path / "tiny.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "1G"], check=True)
    driver.import_image("tiny", image)
    driver.create_guest(GuestSpec(name="web-1", image="tiny", vcpus=2, memory_mib=1024, disk_gib=10, hostname="web-1"))
    with runtime.db.session() as session:
        ready = nodes.heartbeat(session, node_id, driver)
    assert ready.status == NodeStatus.READY and ready.last_heartbeat_at is not None

    full = client.get(f"/v1/nodes/{node_id}/inventory").json()
    assert full["guests"] == [{"name": "web-1", "state": "running", "vcpus": 2, "memory_mib": 1024}]
    assert full["capabilities"]["hardware_virtualisation"] is True
    system = client.get(f"/v1/nodes/{node_id}/inventory/system").json()
    assert system["libvirt_uri"] == NODE["uri"] and system["hostname"] == "hv1.example.net"
    disks = client.get(f"/v1/nodes/{node_id}/inventory/disks").json()["disks"]
    assert {"name": "tiny", "kind": "image", "size_bytes": 1024**3} .items() <= disks[0].items()
    assert client.get(f"/v1/nodes/{node_id}/inventory/network").json() == {"interfaces": []}  # remote: unknown

    with runtime.db.session() as session:
        down = nodes.heartbeat(session, node_id, DeadDriver())
    assert down.status == NodeStatus.UNREACHABLE and "connection refused" in down.status_reason
    shown = client.get(f"/v1/nodes/{node_id}").json()
    assert shown["status"] == "unreachable" and (
        datetime.fromisoformat(shown["last_heartbeat_at"]) == ready.last_heartbeat_at)
    # the last good inventory stays readable while the node is down
    assert client.get(f"/v1/nodes/{node_id}/inventory").json()["guests"][0]["name"] == "web-1"

    with runtime.db.session() as session:
        assert nodes.heartbeat(session, node_id, FakeDriver()).status == NodeStatus.READY


def test_the_local_node_reads_this_machine(runtime: Runtime, admin: Person) -> None:
    with runtime.db.session() as session:
        local = nodes.ensure_local_node(session, runtime.settings)
        assert local is not None
        assert local.uri == "qemu:///system" and local.region == "fra1"
        assert local.capacity.vcpu >= 1 and local.capacity.memory_mib > 0 and local.capacity.disk_gib > 0
        assert nodes.ensure_local_node(session, runtime.settings) is None  # once only
        nodes.heartbeat(session, local.id, FakeDriver(), runtime.settings.data_dir / "pool")
        found = nodes.inventory(session, local.id)
    assert found.system.cpu_count == local.capacity.vcpu and found.system.memory_mib == local.capacity.memory_mib
    assert found.system.kernel and any(i.name == "lo" for i in found.network)
    assert found.disks[0].kind == "pool" and found.disks[0].size_bytes > 0


def test_serve_start_up_registers_the_local_node_only_when_libvirt_is_prepared(runtime: Runtime) -> None:
    with runtime.db.session() as session:
        catalogue_file.seed_default(session)
    assert not nodes.libvirt_prepared(runtime.settings)
    runtime.settings.data_dir.mkdir(parents=True, exist_ok=True)
    (runtime.settings.data_dir / "node.json").write_text(json.dumps({"domain_type": "qemu", "boot_seconds": 1.0}))
    assert nodes.libvirt_prepared(runtime.settings)
    with runtime.db.session() as session:
        assert nodes.ensure_local_node(session, runtime.settings) is not None
        assert [n.uri for n in nodes.list_nodes(session)] == ["qemu:///system"]


def test_refresh_inventory_asks_the_driver_without_touching_health(api: Api, admin: Person, runtime: Runtime) -> None:
    node_id = api.as_(admin.token).post("/v1/nodes", json=NODE).json()["id"]
    with runtime.db.session() as session:
        found = nodes.refresh_inventory(session, node_id, FakeDriver())
        assert found.guests == [] and found.system.hostname == "hv1.example.net"
        with pytest.raises(NodeUnreachable):
            nodes.refresh_inventory(session, node_id, DeadDriver())
    shown = api.as_(admin.token).get(f"/v1/nodes/{node_id}").json()
    assert shown["inventory_at"] is not None and shown["status"] == "unreachable"  # only a heartbeat says ready


def test_a_node_with_guests_cannot_move_region(api: Api, admin: Person, runtime: Runtime) -> None:
    client = api.as_(admin.token)
    node_id = client.post("/v1/nodes", json=NODE).json()["id"]
    with runtime.db.session() as session:
        nodes.heartbeat(session, node_id, FakeDriver())
        nodes.schedule(session, "fra1", Resources(vcpu=1, memory_mib=512, disk_gib=10))
    moved = client.put(f"/v1/nodes/{node_id}", json={"region": "ams1"})
    assert moved.status_code == 409 and "region" in moved.json()["error"]
    assert client.put(f"/v1/nodes/{node_id}", json={"region": "fra1", "name": "hv-renamed"}).status_code == 200


def test_a_region_with_nodes_cannot_be_deleted(api: Api, admin: Person) -> None:
    node = api.as_(admin.token).post("/v1/nodes", json=NODE).json()
    regions = {r["code"]: r["id"] for r in api.as_(admin.token).get("/v1/admin/regions").json()["regions"]}
    refused = api.as_(admin.token).delete(f"/v1/admin/regions/{regions['fra1']}")
    assert refused.status_code == 409 and "still has nodes" in refused.json()["error"]
    assert api.as_(admin.token).delete(f"/v1/nodes/{node['id']}").status_code == 204
    assert api.as_(admin.token).delete(f"/v1/admin/regions/{regions['fra1']}").status_code == 204
