"""Snapshots on the CyberPanel surface (/api/v1/vps/{id}/snapshots...), carried out by the real worker (DBOS)
on a FakeDriver node whose guests have a disk the test writes: create (name rules, description, include_ram),
list, restore (the disk comes back; with include_ram the guest comes back running from its memory) and
delete, each an action; and the refusals (409 busy or duplicate, 403 suspended, 404 another tenant's)."""

from __future__ import annotations

from typing import Any

import httpx

from cloudlet.drivers.base import GuestFailed
from cloudlet.instances import repository
from cloudlet.instances.models import InstanceStatus
from tests.cloud import Cloud, HeldDriver, WrappedDriver, wait_for
from tests.helpers import make_user
from tests.integration.test_power import (
    actions_of,
    cp,
    guest_of,
    numeric_id,
    running_server,
    settles_at,
)


def snapshots(client: httpx.Client, vps: int) -> list[dict[str, Any]]:
    """The VPS's snapshots as CyberPanel lists them."""
    answer = client.get(f"/api/v1/vps/{vps}/snapshots")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["success"] is True and body["data"]["vps_id"] == vps
    found: list[dict[str, Any]] = body["data"]["snapshots"]
    return found


def snapshot(client: httpx.Client, vps: int, name: str, **fields: Any) -> httpx.Response:
    """POST /snapshots/create."""
    return client.post(f"/api/v1/vps/{vps}/snapshots/create", json={"name": name, **fields})


def test_a_snapshot_is_taken_listed_restored_and_deleted(cloud: Cloud) -> None:
    server = running_server(cloud)
    uid, vps, guest = server["id"], numeric_id(cloud, server["id"]), guest_of(cloud, server["id"])
    client = cp(cloud)
    cloud.driver.write_disk(guest, b"version one")

    made = snapshot(client, vps, "pre_upgrade_snapshot", description="Before upgrading to Ubuntu 24.04")
    assert made.status_code == 200, made.text
    body = made.json()
    assert body["message"] == "Snapshot created successfully"
    assert body["data"]["vps_id"] == vps
    assert body["data"]["snapshot"]["name"] == "pre_upgrade_snapshot"
    assert body["data"]["snapshot"]["description"] == "Before upgrading to Ubuntu 24.04"
    assert set(body["data"]["snapshot"]) == {"name", "description", "created_at"}
    listed = snapshots(client, vps)
    assert [(s["name"], s["description"], s["vmstate"]) for s in listed] == [
        ("pre_upgrade_snapshot", "Before upgrading to Ubuntu 24.04", False)]
    assert listed[0]["created_at"] == body["data"]["snapshot"]["created_at"]
    assert cloud.driver.list_snapshots(guest) == ["pre_upgrade_snapshot"]

    cloud.driver.write_disk(guest, b"version two")
    boots = cloud.driver._guests[guest].boots
    restored = client.post(f"/api/v1/vps/{vps}/snapshots/pre_upgrade_snapshot/restore")
    assert restored.status_code == 200, restored.text
    assert restored.json()["message"] == "Snapshot restored successfully"
    assert cloud.driver.read_disk(guest) == b"version one"
    assert cloud.driver._guests[guest].boots == boots + 1  # disk only: powered off, then booted afresh
    settles_at(cloud.client(), uid, "running")

    deleted = client.delete(f"/api/v1/vps/{vps}/snapshots/pre_upgrade_snapshot")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["message"] == "Snapshot deleted successfully"
    assert snapshots(client, vps) == []
    assert cloud.driver.list_snapshots(guest) == []

    done = actions_of(cloud.client(), uid)
    assert [a["command"] for a in done] == ["discard", "restore", "snapshot", "create"]
    assert all(a["status"] == "success" for a in done)
    assert [t["name"] for t in done[1]["tasks"]] == ["power_off_for_restore", "restore_disk",
                                                     "power_on_after_restore", "finalize"]
    assert [t["name"] for t in done[2]["tasks"]] == ["take_snapshot", "finalize"]


def test_a_snapshot_with_ram_brings_the_guest_back_running_without_a_boot(cloud: Cloud) -> None:
    server = running_server(cloud)
    vps, guest = numeric_id(cloud, server["id"]), guest_of(cloud, server["id"])
    client = cp(cloud)
    cloud.driver.write_disk(guest, b"with memory")
    assert snapshot(client, vps, "live", include_ram=True).json()["message"] == "Snapshot created successfully"
    assert snapshots(client, vps)[0]["vmstate"] is True
    cloud.driver.write_disk(guest, b"changed")
    boots = cloud.driver._guests[guest].boots
    assert client.post(f"/api/v1/vps/{vps}/snapshots/live/restore").status_code == 200
    assert cloud.driver.read_disk(guest) == b"with memory"
    assert cloud.driver._guests[guest].boots == boots  # back where its memory was, not booted
    last = actions_of(cloud.client(), server["id"])[0]
    assert "memory" in last["tasks"][2]["detail"]
    assert settles_at(cloud.client(), server["id"], "running")


def test_restoring_a_stopped_server_leaves_it_stopped(cloud: Cloud) -> None:
    server = running_server(cloud)
    uid, vps, guest = server["id"], numeric_id(cloud, server["id"]), guest_of(cloud, server["id"])
    client = cp(cloud)
    cloud.client().post(f"/api/instances/{uid}/power/shutdown")
    settles_at(cloud.client(), uid, "stopped")
    cloud.driver.write_disk(guest, b"off")
    assert snapshot(client, vps, "while_off", include_ram=True).status_code == 200
    cloud.driver.write_disk(guest, b"later")
    assert client.post(f"/api/v1/vps/{vps}/snapshots/while_off/restore").status_code == 200
    assert cloud.driver.read_disk(guest) == b"off"
    assert settles_at(cloud.client(), uid, "stopped")


def test_names_follow_the_rules_and_are_unique(cloud: Cloud) -> None:
    server = running_server(cloud)
    vps = numeric_id(cloud, server["id"])
    client = cp(cloud)
    for bad in ("pre-upgrade", "with space", "", "x" * 65, "dot.ted", "ünï"):
        answer = snapshot(client, vps, bad)
        assert answer.status_code == 400, (bad, answer.text)
        assert answer.json()["success"] is False and answer.json()["error_code"] == "INVALID_SNAPSHOT_NAME"
    missing = client.post(f"/api/v1/vps/{vps}/snapshots/create", json={"description": "no name"})
    assert missing.status_code == 400, missing.text
    assert snapshot(client, vps, "Good_Name_1").status_code == 200
    again = snapshot(client, vps, "Good_Name_1")
    assert again.status_code == 409 and again.json()["error_code"] == "SNAPSHOT_EXISTS"
    unknown = [client.post(f"/api/v1/vps/{vps}/snapshots/nope/restore"),
               client.delete(f"/api/v1/vps/{vps}/snapshots/nope")]
    assert [u.status_code for u in unknown] == [404, 404]
    assert unknown[0].json()["error_code"] == "SNAPSHOT_NOT_FOUND"
    assert [s["name"] for s in snapshots(client, vps)] == ["Good_Name_1"]
    assert [a["command"] for a in actions_of(cloud.client(), server["id"])] == ["snapshot", "create"]


def test_a_busy_server_is_409_and_a_suspended_one_403(cloud: Cloud, node_driver: Any) -> None:
    server = running_server(cloud)
    uid, vps = server["id"], numeric_id(cloud, server["id"])
    client = cp(cloud)
    assert snapshot(client, vps, "kept").status_code == 200
    held = HeldDriver(cloud.driver, "shutdown")
    node_driver(held)
    assert cloud.client().post(f"/v1/instances/{uid}/stop").status_code == 202
    assert held.waiting.wait(30)
    busy = [snapshot(client, vps, "another"), client.post(f"/api/v1/vps/{vps}/snapshots/kept/restore"),
            client.delete(f"/api/v1/vps/{vps}/snapshots/kept")]
    assert [b.status_code for b in busy] == [409, 409, 409], [b.text for b in busy]
    assert {b.json()["error_code"] for b in busy} == {"INSTANCE_BUSY"}
    held.gate.set()
    settles_at(cloud.client(), uid, "stopped")

    with cloud.runtime.db.session() as session:  # what the billing engine's suspension leaves
        row = repository.instance(session, uid, lock=True)
        assert row is not None
        row.status = InstanceStatus.SUSPENDED
    refused = [snapshot(client, vps, "another"), client.post(f"/api/v1/vps/{vps}/snapshots/kept/restore"),
               client.delete(f"/api/v1/vps/{vps}/snapshots/kept")]
    assert [r.status_code for r in refused] == [403, 403, 403], [r.text for r in refused]
    assert refused[0].json()["error_code"] == "VPS_SUSPENDED"
    assert [s["name"] for s in snapshots(client, vps)] == ["kept"]


def test_another_tenants_server_is_404(cloud: Cloud) -> None:
    server = running_server(cloud)
    vps = numeric_id(cloud, server["id"])
    assert snapshot(cp(cloud), vps, "mine").status_code == 200
    other = cp(cloud, make_user(cloud.runtime, "other@example.com"))
    answers = [other.get(f"/api/v1/vps/{vps}/snapshots"), snapshot(other, vps, "theirs"),
               other.post(f"/api/v1/vps/{vps}/snapshots/mine/restore"),
               other.delete(f"/api/v1/vps/{vps}/snapshots/mine"),
               other.get("/api/v1/vps/99999999999/snapshots")]
    assert [a.status_code for a in answers] == [404] * 5, [a.text for a in answers]
    assert answers[0].json()["error_code"] == "VPS_NOT_FOUND"
    assert [s["name"] for s in snapshots(cp(cloud), vps)] == ["mine"]


def test_a_snapshot_the_node_refuses_is_a_500_and_is_not_listed(cloud: Cloud, node_driver: Any) -> None:
    server = running_server(cloud)
    vps = numeric_id(cloud, server["id"])

    def refuse(name: str, snapshot: str, *, include_ram: bool) -> None:
        raise GuestFailed("the disk does not support internal snapshots")

    node_driver(WrappedDriver(cloud.driver, create_snapshot=refuse))
    answer = snapshot(cp(cloud), vps, "doomed")
    assert answer.status_code == 500, answer.text
    assert answer.json()["error_code"] == "SNAPSHOT_FAILED"
    assert "internal snapshots" in answer.json()["message"]
    assert snapshots(cp(cloud), vps) == []
    failed = actions_of(cloud.client(), server["id"])[0]
    assert failed["command"] == "snapshot" and failed["status"] == "error"
    wait_for(lambda: cloud.client().get(f"/api/instances/{server['id']}").json()["locked"] is False)
    assert snapshot(cp(cloud), vps, "doomed").status_code == 500  # the name is free again
