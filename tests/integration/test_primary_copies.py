"""Snapshots and backups on the primary surface (/api/instances/{id}/snapshots and /backups, Cloudlet extensions),
carried out by the real worker (DBOS) on a FakeDriver node whose guests have a disk the test writes, with backups in
the local store: create, list, restore and delete of each (answered at once, 202, with the primary action), the
download and its checksum, the refusals in the primary error format (422 bad name, 409 busy or duplicate, 404
another project's), reinstall and upgrade refused (409 SNAPSHOTS_EXIST) while snapshots exist, and the backups of a
deleted instance removed from the store by the backups sweep."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloudlet.backups import repository as copies
from cloudlet.catalog import service as catalog
from cloudlet.instances import repository
from tests.cloud import Cloud, HeldDriver, wait_for
from tests.helpers import make_user
from tests.integration.test_instances import order
from tests.integration.test_power import actions_of, guest_of, running_server, settles_at

SNAPSHOT_KEYS = {"instance_id", "name", "description", "include_ram", "status", "created_at"}
BACKUP_KEYS = {"id", "instance_id", "status", "size_bytes", "checksum_sha256", "error", "created_at", "completed_at"}


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """The sweep that removes what deleted instances left ticks every second, so its tests wait less."""
    return {"instance_sweep_schedule": "* * * * * *"}


def snapshots(client: httpx.Client, uid: str) -> list[dict[str, Any]]:
    """The instance's snapshots as the primary surface lists them."""
    answer = client.get(f"/api/instances/{uid}/snapshots")
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()
    return found


def backups(client: httpx.Client, uid: str) -> list[dict[str, Any]]:
    """The instance's backups as the primary surface lists them."""
    answer = client.get(f"/api/instances/{uid}/backups")
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()
    return found


def taken(cloud: Cloud, uid: str, name: str, **fields: Any) -> dict[str, Any]:
    """Take a snapshot and wait until it is ready and the instance free; the answer to the POST."""
    client = cloud.client()
    answer = client.post(f"/api/instances/{uid}/snapshots", json={"name": name, **fields})
    assert answer.status_code == 202, answer.text
    wait_for(lambda: [s["status"] for s in snapshots(client, uid) if s["name"] == name] == ["ready"])
    wait_for(lambda: client.get(f"/api/instances/{uid}").json()["locked"] is False)
    started: dict[str, Any] = answer.json()
    return started


def made_backup(cloud: Cloud, uid: str) -> dict[str, Any]:
    """Make a backup and wait until it is ready and the instance free; the backup."""
    client = cloud.client()
    answer = client.post(f"/api/instances/{uid}/backups")
    assert answer.status_code == 202, answer.text
    bid = answer.json()["id"]
    ready: dict[str, Any] = wait_for(
        lambda: (b := client.get(f"/api/instances/{uid}/backups/{bid}").json())["status"] != "creating" and b)
    wait_for(lambda: client.get(f"/api/instances/{uid}").json()["locked"] is False)
    assert ready["status"] == "ready", ready
    return ready


def stored(cloud: Cloud, uid: str, bid: str) -> Path:
    """Where the local store keeps a backup."""
    return cloud.runtime.settings.data_dir / "backups" / uid / f"{bid}.qcow2"


def plan_id(cloud: Cloud, code: str) -> int:
    """A default catalogue plan's id."""
    with cloud.runtime.db.session(write=False) as session:
        return catalog.get_plan(session, code).id


def test_a_snapshot_is_taken_listed_restored_and_deleted(cloud: Cloud) -> None:
    server = running_server(cloud)
    uid, guest = server["id"], guest_of(cloud, server["id"])
    client = cloud.client()
    cloud.driver.write_disk(guest, b"version one")

    made = client.post(f"/api/instances/{uid}/snapshots", json={"name": "before_change", "description": "pre"})
    assert made.status_code == 202, made.text
    body = made.json()
    assert set(body) == SNAPSHOT_KEYS | {"action"}
    assert (body["instance_id"], body["name"], body["description"], body["include_ram"], body["status"]) == (
        uid, "before_change", "pre", False, "creating")
    assert body["created_at"].endswith("Z")
    assert body["action"]["command"] == "snapshot" and body["action"]["status"] == "running"
    assert [t["name"] for t in body["action"]["tasks"]] == ["take_snapshot", "finalize"]
    wait_for(lambda: [s["status"] for s in snapshots(client, uid)] == ["ready"])
    settles_at(client, uid, "running")
    listed = snapshots(client, uid)
    assert [(s["name"], s["description"], s["include_ram"]) for s in listed] == [("before_change", "pre", False)]
    assert set(listed[0]) == SNAPSHOT_KEYS and listed[0]["created_at"] == body["created_at"]
    assert cloud.driver.list_snapshots(guest) == ["before_change"]

    cloud.driver.write_disk(guest, b"version two")
    boots = cloud.driver._guests[guest].boots
    restored = client.post(f"/api/instances/{uid}/snapshots/before_change/restore")
    assert restored.status_code == 202, restored.text
    assert restored.json()["name"] == "before_change" and restored.json()["action"]["command"] == "restore"
    wait_for(lambda: actions_of(client, uid)[0]["status"] != "running")
    settles_at(client, uid, "running")
    assert cloud.driver.read_disk(guest) == b"version one"
    assert cloud.driver._guests[guest].boots == boots + 1  # powered off, the disk brought back, booted again

    deleted = client.delete(f"/api/instances/{uid}/snapshots/before_change")
    assert deleted.status_code == 202, deleted.text
    assert deleted.json()["action"]["command"] == "discard"
    wait_for(lambda: snapshots(client, uid) == [])
    assert cloud.driver.list_snapshots(guest) == []

    done = actions_of(client, uid)
    assert [a["command"] for a in done] == ["discard", "restore", "snapshot", "create"]
    assert all(a["status"] == "success" for a in done)
    # the action in each answer is the one the instance's action list shows
    assert [body["action"]["id"], restored.json()["action"]["id"], deleted.json()["action"]["id"]] == [
        done[2]["id"], done[1]["id"], done[0]["id"]]


def test_a_backup_is_made_downloaded_restored_and_deleted(cloud: Cloud) -> None:
    server = running_server(cloud)
    uid, guest = server["id"], guest_of(cloud, server["id"])
    client = cloud.client()
    cloud.driver.write_disk(guest, b"the original content")

    answer = client.post(f"/api/instances/{uid}/backups")
    assert answer.status_code == 202, answer.text
    started = answer.json()
    assert set(started) == BACKUP_KEYS | {"action"}
    assert started["status"] == "creating" and started["instance_id"] == uid
    assert started["action"]["command"] == "backup" and [t["name"] for t in started["action"]["tasks"]] == [
        "copy_disk", "finalize"]
    bid = started["id"]
    backup = wait_for(lambda: (b := client.get(f"/api/instances/{uid}/backups/{bid}").json())["status"] == "ready"
                      and b)
    settles_at(client, uid, "running")
    assert set(backup) == BACKUP_KEYS and backup["error"] == "" and backup["completed_at"].endswith("Z")
    assert backup["size_bytes"] == stored(cloud, uid, bid).stat().st_size > 0
    assert [b["id"] for b in backups(client, uid)] == [bid]

    download = client.get(f"/api/instances/{uid}/backups/{bid}/download")
    assert download.status_code == 200, download.text
    assert download.headers["content-type"] == "application/octet-stream"
    assert download.headers["x-checksum-sha256"] == backup["checksum_sha256"]
    assert hashlib.sha256(download.content).hexdigest() == backup["checksum_sha256"]
    assert int(download.headers["content-length"]) == len(download.content) == backup["size_bytes"]
    assert download.content[:4] == b"QFI\xfb"  # a qcow2
    assert f"{bid}.qcow2" in download.headers["content-disposition"]

    cloud.driver.write_disk(guest, b"something else entirely")
    restore = client.post(f"/api/instances/{uid}/backups/{bid}/restore")
    assert restore.status_code == 202, restore.text
    assert restore.json()["id"] == bid and restore.json()["action"]["command"] == "restore"
    wait_for(lambda: actions_of(client, uid)[0]["status"] != "running")
    settles_at(client, uid, "running")
    assert cloud.driver.read_disk(guest) == b"the original content"

    deleted = client.delete(f"/api/instances/{uid}/backups/{bid}")
    assert deleted.status_code == 202, deleted.text
    assert deleted.json()["action"]["command"] == "discard"
    gone = wait_for(lambda: (g := client.get(f"/api/instances/{uid}/backups/{bid}")).status_code == 404 and g)
    assert gone.json()["code"] == "BACKUP_NOT_FOUND" and gone.json()["message"]
    assert backups(client, uid) == []
    assert not stored(cloud, uid, bid).exists()
    assert all(a["status"] == "success" for a in actions_of(client, uid))


def test_a_bad_snapshot_name_is_422_in_the_primary_format_and_records_nothing(cloud: Cloud) -> None:
    server = running_server(cloud)
    uid = server["id"]
    client = cloud.client()
    for name in ("has space", "", "x" * 65, "semi;colon", "../up"):
        answer = client.post(f"/api/instances/{uid}/snapshots", json={"name": name})
        assert answer.status_code == 422, (name, answer.text)
        body = answer.json()
        assert body["code"] == "INVALID_SNAPSHOT_NAME", body
        assert "letters, digits and underscores" in body["message"] and body["errors"]["name"] == [body["message"]]
    missing = client.post(f"/api/instances/{uid}/snapshots", json={"description": "no name"})
    assert missing.status_code == 422 and "name" in missing.json()["errors"], missing.text
    assert "message" in missing.json()
    assert snapshots(client, uid) == [] and actions_of(client, uid)[0]["command"] == "create"

    taken(cloud, uid, "only_once")
    again = client.post(f"/api/instances/{uid}/snapshots", json={"name": "only_once"})
    assert again.status_code == 409 and again.json()["code"] == "SNAPSHOT_EXISTS", again.text
    unknown = [client.post(f"/api/instances/{uid}/snapshots/never_taken/restore"),
               client.delete(f"/api/instances/{uid}/snapshots/never_taken"),
               client.get(f"/api/instances/{uid}/backups/not-a-backup"),
               client.post(f"/api/instances/{uid}/backups/not-a-backup/restore")]
    assert [u.status_code for u in unknown] == [404] * 4, [u.text for u in unknown]
    assert [u.json()["code"] for u in unknown] == ["SNAPSHOT_NOT_FOUND"] * 2 + ["BACKUP_NOT_FOUND"] * 2
    assert [s["name"] for s in snapshots(client, uid)] == ["only_once"]


def test_another_projects_instance_is_404_and_nothing_changes(cloud: Cloud) -> None:
    server = running_server(cloud)
    uid = server["id"]
    taken(cloud, uid, "mine")
    bid = made_backup(cloud, uid)["id"]
    other = cloud.client(make_user(cloud.runtime, "other@example.com"))
    answers = [other.get(f"/api/instances/{uid}/snapshots"),
               other.post(f"/api/instances/{uid}/snapshots", json={"name": "theirs"}),
               other.post(f"/api/instances/{uid}/snapshots/mine/restore"),
               other.delete(f"/api/instances/{uid}/snapshots/mine"),
               other.get(f"/api/instances/{uid}/backups"),
               other.post(f"/api/instances/{uid}/backups"),
               other.get(f"/api/instances/{uid}/backups/{bid}"),
               other.get(f"/api/instances/{uid}/backups/{bid}/download"),
               other.post(f"/api/instances/{uid}/backups/{bid}/restore"),
               other.delete(f"/api/instances/{uid}/backups/{bid}")]
    assert [a.status_code for a in answers] == [404] * 10, [a.text for a in answers]
    assert {a.json()["code"] for a in answers} == {"VPS_NOT_FOUND"}
    owner = cloud.client()
    assert [s["name"] for s in snapshots(owner, uid)] == ["mine"]
    assert [b["id"] for b in backups(owner, uid)] == [bid] and stored(cloud, uid, bid).exists()
    assert [a["command"] for a in actions_of(owner, uid)] == ["backup", "snapshot", "create"]


def test_a_busy_instance_is_409_while_reads_go_on(cloud: Cloud, node_driver: Any) -> None:
    server = running_server(cloud)
    uid = server["id"]
    client = cloud.client()
    taken(cloud, uid, "kept")
    bid = made_backup(cloud, uid)["id"]
    held = HeldDriver(cloud.driver, "shutdown")
    node_driver(held)
    assert client.post(f"/api/instances/{uid}/power/shutdown").status_code == 200
    assert held.waiting.wait(30)
    busy = [client.post(f"/api/instances/{uid}/snapshots", json={"name": "during"}),
            client.post(f"/api/instances/{uid}/snapshots/kept/restore"),
            client.delete(f"/api/instances/{uid}/snapshots/kept"),
            client.post(f"/api/instances/{uid}/backups"),
            client.post(f"/api/instances/{uid}/backups/{bid}/restore"),
            client.delete(f"/api/instances/{uid}/backups/{bid}")]
    assert [b.status_code for b in busy] == [409] * 6, [b.text for b in busy]
    assert {b.json()["code"] for b in busy} == {"INSTANCE_BUSY"}
    assert "in progress" in busy[0].json()["message"]
    assert [s["name"] for s in snapshots(client, uid)] == ["kept"]  # reads go on
    assert client.get(f"/api/instances/{uid}/backups/{bid}/download").status_code == 200
    held.gate.set()
    settles_at(client, uid, "stopped")
    assert [a["command"] for a in actions_of(client, uid)] == ["shutdown", "backup", "snapshot", "create"]
    assert [b["id"] for b in backups(client, uid)] == [bid]


def test_reinstall_and_upgrade_are_refused_while_snapshots_exist(cloud: Cloud) -> None:
    server = running_server(cloud)
    uid, guest = server["id"], guest_of(cloud, server["id"])
    client = cloud.client()
    bid = made_backup(cloud, uid)["id"]
    taken(cloud, uid, "first")
    taken(cloud, uid, "second")
    balance, plan = cloud.balance(), client.get(f"/api/instances/{uid}").json()["plan"]
    reinstall_body = {"os_template_id": cloud.template_id, "os_name": "Debian 12"}
    upgrade_body = {"package_id": plan_id(cloud, "scout-2"), "reboot": False}

    refused = [client.post(f"/api/instances/{uid}/reinstall", json=reinstall_body),
               client.post(f"/api/instances/{uid}/upgrade", json=upgrade_body)]
    assert [r.status_code for r in refused] == [409, 409], [r.text for r in refused]
    assert {r.json()["code"] for r in refused} == {"SNAPSHOTS_EXIST"}
    for answer in refused:
        assert "Delete the 2 snapshots first" in answer.json()["message"]
        assert "backups are kept" in answer.json()["message"]
    assert "replaces the disk" in refused[0].json()["message"]
    assert "cannot be resized" in refused[1].json()["message"]
    assert cloud.balance() == balance  # the upgrade charged nothing
    detail = client.get(f"/api/instances/{uid}").json()
    assert detail["plan"] == plan and detail["status"] == "running" and detail["locked"] is False
    assert [a["command"] for a in actions_of(client, uid)] == ["snapshot", "snapshot", "backup", "create"]

    for name in ("first", "second"):
        assert client.delete(f"/api/instances/{uid}/snapshots/{name}").status_code == 202
        settles_at(client, uid, "running")
    assert snapshots(client, uid) == []
    assert cloud.driver.list_snapshots(guest) == []

    reinstall = client.post(f"/api/instances/{uid}/reinstall", json=reinstall_body)
    assert reinstall.status_code == 200, reinstall.text
    settles_at(client, uid, "running")
    upgrade = client.post(f"/api/instances/{uid}/upgrade", json=upgrade_body)
    assert upgrade.status_code == 200, upgrade.text
    wait_for(lambda: actions_of(client, uid)[0]["status"] != "running")
    assert [a["command"] for a in actions_of(client, uid)[:2]] == ["upgrade", "reinstall"]
    assert all(a["status"] == "success" for a in actions_of(client, uid)[:2])
    assert cloud.balance() < balance
    # the backup outlived the reinstall, as the refusal said
    assert [b["id"] for b in backups(client, uid)] == [bid] and stored(cloud, uid, bid).exists()


def test_deleting_an_instance_removes_its_backups_and_keeps_other_instances_ones(cloud: Cloud) -> None:
    client = cloud.client()
    doomed = running_server(cloud)["id"]
    kept_body = client.post("/api/instances", json=order(cloud, name="web-2", hostname="web-2.example.com"))
    assert kept_body.status_code == 201, kept_body.text
    kept = kept_body.json()["id"]
    settles_at(client, kept, "running")
    doomed_backups = [made_backup(cloud, doomed)["id"], made_backup(cloud, doomed)["id"]]
    taken(cloud, doomed, "with_the_disk")
    kept_backup = made_backup(cloud, kept)["id"]
    assert all(stored(cloud, doomed, bid).exists() for bid in doomed_backups)
    with cloud.runtime.db.session(write=False) as session:
        row = repository.instance(session, doomed)
        assert row is not None
        doomed_id = row.id

    deleted = client.request("DELETE", f"/api/instances/{doomed}", json={"mode": "immediate"})
    assert deleted.status_code == 200, deleted.text
    wait_for(lambda: (d := client.get(f"/api/instances/{doomed}")).status_code == 404 and d)

    def swept() -> bool:
        with cloud.runtime.db.session(write=False) as session:
            return not copies.backups(session, doomed_id) and not copies.snapshots(session, doomed_id)

    wait_for(swept, timeout=45)  # the backups sweep runs on the instance sweep's schedule
    folder = cloud.runtime.settings.data_dir / "backups" / doomed
    assert not folder.exists(), list(folder.iterdir())
    assert client.get(f"/api/instances/{doomed}/backups").status_code == 404
    assert client.get(f"/api/instances/{doomed}/backups/{doomed_backups[0]}/download").status_code == 404

    # another instance's backup is untouched
    assert [b["id"] for b in backups(client, kept)] == [kept_backup]
    assert stored(cloud, kept, kept_backup).exists()
    download = client.get(f"/api/instances/{kept}/backups/{kept_backup}/download")
    assert download.status_code == 200
    assert hashlib.sha256(download.content).hexdigest() == download.headers["x-checksum-sha256"]


def test_a_backup_file_the_store_cannot_remove_keeps_its_row_until_a_later_sweep_removes_it(cloud: Cloud) -> None:
    client = cloud.client()
    uid = running_server(cloud)["id"]
    stuck, fine = made_backup(cloud, uid)["id"], made_backup(cloud, uid)["id"]
    path = stored(cloud, uid, stuck)
    path.unlink()
    (path / "in-the-way").mkdir(parents=True)  # a directory where the file was: the store cannot unlink it
    with cloud.runtime.db.session(write=False) as session:
        row = repository.instance(session, uid)
        assert row is not None
        instance_id = row.id

    assert client.request("DELETE", f"/api/instances/{uid}", json={"mode": "immediate"}).status_code == 200

    def left() -> list[str]:
        with cloud.runtime.db.session(write=False) as session:
            return [b.uuid for b in copies.backups(session, instance_id)]

    wait_for(lambda: left() == [stuck], timeout=45)  # one sweep: the other backup went, this one stays recorded
    assert path.is_dir() and not stored(cloud, uid, fine).exists()
    (path / "in-the-way").rmdir()
    path.rmdir()
    wait_for(lambda: left() == [], timeout=45)  # a later tick removes the row of a file that is gone now
    assert not (cloud.runtime.settings.data_dir / "backups" / uid).exists()
