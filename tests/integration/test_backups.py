"""Backups on the Shardlyn surface (/v1/instances/{id}/backups...), carried out by the real worker (DBOS) on a
FakeDriver node whose guests have a disk the test writes, into the local backup store (a directory under the
data dir): create (a real compressed qcow2 with its SHA-256), list, download (streamed, checksum), restore (the
disk comes back; a server that ran runs again) and delete, each an action; a damaged or failed backup; and the
refusals (409 busy or not ready, 403 suspended, 404 another tenant's). The same cycle runs once more against an
S3-compatible store: a local S3 server (moto in server mode, speaking S3's own HTTP protocol) the test starts."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer

from cloudlet.drivers.base import GuestFailed
from cloudlet.instances import repository
from cloudlet.instances.models import InstanceStatus
from tests.cloud import Cloud, HeldDriver, WrappedDriver, wait_for
from tests.helpers import free_port, make_user
from tests.integration.test_power import (
    actions_of,
    guest_of,
    running_server,
    settles_at,
)


def backup_of(client: httpx.Client, uid: str, bid: str) -> dict[str, Any]:
    """One backup as Shardlyn shows it."""
    answer = client.get(f"/v1/instances/{uid}/backups/{bid}")
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def made_backup(cloud: Cloud, uid: str) -> dict[str, Any]:
    """Ask for a backup and wait until it is ready and the instance free; the backup."""
    client = cloud.client()
    answer = client.post(f"/v1/instances/{uid}/backups")
    assert answer.status_code == 202, answer.text
    started = answer.json()
    assert started["status"] == "creating" and started["instance_id"] == uid and started["action_id"]
    ready: dict[str, Any] = wait_for(lambda: (b := backup_of(client, uid, started["id"]))["status"] != "creating"
                                     and b)
    wait_for(lambda: client.get(f"/v1/instances/{uid}").json()["locked"] is False)
    return ready


def stored(cloud: Cloud, uid: str, bid: str) -> Path:
    """Where the local store keeps a backup."""
    return cloud.runtime.settings.data_dir / "backups" / uid / f"{bid}.qcow2"


def test_a_backup_is_made_downloaded_restored_and_deleted(cloud: Cloud) -> None:
    server = running_server(cloud)
    uid, guest = server["id"], guest_of(cloud, server["id"])
    client = cloud.client()
    cloud.driver.write_disk(guest, b"the original content")

    backup = made_backup(cloud, uid)
    bid = backup["id"]
    assert backup["status"] == "ready" and backup["error"] == ""
    assert backup["size_bytes"] > 0 and len(backup["checksum_sha256"]) == 64
    assert backup["created_at"].endswith("Z") and backup["completed_at"].endswith("Z")
    assert stored(cloud, uid, bid).stat().st_size == backup["size_bytes"]
    listed = client.get(f"/v1/instances/{uid}/backups").json()
    assert listed["total"] == 1 and [b["id"] for b in listed["backups"]] == [bid]

    download = client.get(f"/v1/instances/{uid}/backups/{bid}/download")
    assert download.status_code == 200, download.text
    assert download.headers["content-type"] == "application/octet-stream"
    assert download.headers["x-checksum-sha256"] == backup["checksum_sha256"]
    assert int(download.headers["content-length"]) == backup["size_bytes"] == len(download.content)
    assert hashlib.sha256(download.content).hexdigest() == backup["checksum_sha256"]
    assert download.content[:4] == b"QFI\xfb"  # a qcow2
    assert f"{bid}.qcow2" in download.headers["content-disposition"]

    cloud.driver.write_disk(guest, b"something else entirely")
    boots = cloud.driver._guests[guest].boots
    restore = client.post(f"/v1/instances/{uid}/backups/{bid}/restore")
    assert restore.status_code == 202, restore.text
    assert restore.json()["id"] == bid and restore.json()["action_id"]
    settles_at(client, uid, "running")
    assert cloud.driver.read_disk(guest) == b"the original content"
    assert cloud.driver._guests[guest].boots == boots + 1

    deleted = client.delete(f"/v1/instances/{uid}/backups/{bid}")
    assert deleted.status_code == 202, deleted.text
    wait_for(lambda: client.get(f"/v1/instances/{uid}/backups/{bid}").status_code == 404)
    assert client.get(f"/v1/instances/{uid}/backups").json() == {"backups": [], "total": 0}
    assert not stored(cloud, uid, bid).exists()

    done = actions_of(client, uid)
    assert [a["command"] for a in done] == ["discard", "restore", "backup", "create"]
    assert all(a["status"] == "success" for a in done)
    assert done[2]["tasks"][0]["name"] == "copy_disk" and backup["checksum_sha256"] in done[2]["tasks"][0]["detail"]


def test_restoring_a_stopped_server_leaves_it_stopped(cloud: Cloud) -> None:
    server = running_server(cloud)
    uid, guest = server["id"], guest_of(cloud, server["id"])
    client = cloud.client()
    client.post(f"/api/instances/{uid}/power/shutdown")
    settles_at(client, uid, "stopped")
    cloud.driver.write_disk(guest, b"first")
    backup = made_backup(cloud, uid)
    cloud.driver.write_disk(guest, b"second")
    assert client.post(f"/v1/instances/{uid}/backups/{backup['id']}/restore").status_code == 202
    wait_for(lambda: actions_of(client, uid)[0]["status"] == "success")
    assert cloud.driver.read_disk(guest) == b"first"
    assert settles_at(client, uid, "stopped")


def test_a_damaged_backup_is_not_written_over_the_disk(cloud: Cloud) -> None:
    server = running_server(cloud)
    uid, guest = server["id"], guest_of(cloud, server["id"])
    client = cloud.client()
    cloud.driver.write_disk(guest, b"good")
    backup = made_backup(cloud, uid)
    path = stored(cloud, uid, backup["id"])
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    path.write_bytes(bytes(data))
    cloud.driver.write_disk(guest, b"current")
    assert client.post(f"/v1/instances/{uid}/backups/{backup['id']}/restore").status_code == 202
    failed = wait_for(lambda: (a := actions_of(client, uid)[0])["status"] == "error" and a)
    assert "damaged" in failed["error"] and failed["tasks"][0]["status"] == "failed"
    assert cloud.driver.read_disk(guest) == b"current"
    assert settles_at(client, uid, "running")  # checked before the power was cut: the guest runs on
    assert not list((cloud.runtime.settings.data_dir / "backups" / ".work").iterdir())


def test_a_backup_the_node_cannot_copy_is_failed_and_leaves_nothing_in_the_store(cloud: Cloud,
                                                                                 node_driver: Any) -> None:
    server = running_server(cloud)
    uid = server["id"]

    def refuse(name: str, destination: Path) -> None:
        destination.write_bytes(b"half a copy")
        raise GuestFailed("the node's disk could not be read")

    node_driver(WrappedDriver(cloud.driver, export_disk=refuse))
    backup = made_backup(cloud, uid)
    assert backup["status"] == "failed" and "could not be read" in backup["error"]
    assert backup["checksum_sha256"] is None and not stored(cloud, uid, backup["id"]).exists()
    client = cloud.client()
    refused = [client.get(f"/v1/instances/{uid}/backups/{backup['id']}/download"),
               client.post(f"/v1/instances/{uid}/backups/{backup['id']}/restore")]
    assert [r.status_code for r in refused] == [409, 409], [r.text for r in refused]
    assert "not ready" in refused[0].json()["error"]
    assert settles_at(client, uid, "running")
    assert client.delete(f"/v1/instances/{uid}/backups/{backup['id']}").status_code == 202  # a failed one goes too
    wait_for(lambda: client.get(f"/v1/instances/{uid}/backups").json()["total"] == 0)


def test_a_busy_server_is_409_and_a_suspended_one_403(cloud: Cloud, node_driver: Any) -> None:
    server = running_server(cloud)
    uid = server["id"]
    client = cloud.client()
    backup = made_backup(cloud, uid)
    held = HeldDriver(cloud.driver, "shutdown")
    node_driver(held)
    assert client.post(f"/v1/instances/{uid}/stop").status_code == 202
    assert held.waiting.wait(30)
    busy = [client.post(f"/v1/instances/{uid}/backups"),
            client.post(f"/v1/instances/{uid}/backups/{backup['id']}/restore"),
            client.delete(f"/v1/instances/{uid}/backups/{backup['id']}")]
    assert [b.status_code for b in busy] == [409, 409, 409], [b.text for b in busy]
    assert "in progress" in busy[0].json()["error"]
    assert client.get(f"/v1/instances/{uid}/backups/{backup['id']}/download").status_code == 200  # reads go on
    held.gate.set()
    settles_at(client, uid, "stopped")

    with cloud.runtime.db.session() as session:  # what the billing engine's suspension leaves
        row = repository.instance(session, uid, lock=True)
        assert row is not None
        row.status = InstanceStatus.SUSPENDED
    refused = [client.post(f"/v1/instances/{uid}/backups"),
               client.post(f"/v1/instances/{uid}/backups/{backup['id']}/restore"),
               client.delete(f"/v1/instances/{uid}/backups/{backup['id']}")]
    assert [r.status_code for r in refused] == [403, 403, 403], [r.text for r in refused]
    assert client.get(f"/v1/instances/{uid}/backups").json()["total"] == 1


def test_another_tenants_backups_are_404(cloud: Cloud) -> None:
    server = running_server(cloud)
    uid = server["id"]
    backup = made_backup(cloud, uid)
    bid = backup["id"]
    other = cloud.client(make_user(cloud.runtime, "other@example.com"))
    answers = [other.get(f"/v1/instances/{uid}/backups"), other.post(f"/v1/instances/{uid}/backups"),
               other.get(f"/v1/instances/{uid}/backups/{bid}"),
               other.get(f"/v1/instances/{uid}/backups/{bid}/download"),
               other.post(f"/v1/instances/{uid}/backups/{bid}/restore"),
               other.delete(f"/v1/instances/{uid}/backups/{bid}"),
               cloud.client().get(f"/v1/instances/{uid}/backups/not-a-backup"),
               cloud.client().get("/v1/instances/99999999999/backups")]
    assert [a.status_code for a in answers] == [404] * 8, [a.text for a in answers]
    assert all("error" in a.json() for a in answers)
    assert [a["command"] for a in actions_of(cloud.client(), uid)] == ["backup", "create"]
    assert stored(cloud, uid, bid).exists()


# --- an S3-compatible store -------------------------------------------------------------------------------

S3_BUCKET = "cloudlet-test-backups"
S3_KEYS = {"aws_access_key_id": "test-access", "aws_secret_access_key": "test-secret", "region_name": "us-east-1"}


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A local S3 server (moto) with an empty bucket; its URL."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    try:
        boto3.client("s3", endpoint_url=url, **S3_KEYS).create_bucket(Bucket=S3_BUCKET)
        yield url
    finally:
        server.stop()


class TestOnS3:
    """Backups in an S3-compatible bucket instead of the local directory."""

    @pytest.fixture
    def settings_overrides(self, s3_endpoint: str) -> dict[str, Any]:
        """The runtime's (and worker's) settings point the backup store at the local S3 server."""
        return {"backup_s3_bucket": S3_BUCKET, "backup_s3_endpoint": s3_endpoint, "backup_s3_prefix": "tests/",
                "backup_s3_access_key": S3_KEYS["aws_access_key_id"],
                "backup_s3_secret_key": S3_KEYS["aws_secret_access_key"]}

    def test_a_backup_goes_to_the_bucket_and_comes_back(self, cloud: Cloud, s3_endpoint: str) -> None:
        server = running_server(cloud)
        uid, guest = server["id"], guest_of(cloud, server["id"])
        client = cloud.client()
        bucket = boto3.client("s3", endpoint_url=s3_endpoint, **S3_KEYS)
        cloud.driver.write_disk(guest, b"kept in s3")
        backup = made_backup(cloud, uid)
        assert backup["status"] == "ready", backup
        key = f"tests/{uid}/{backup['id']}.qcow2"
        held = bucket.get_object(Bucket=S3_BUCKET, Key=key)["Body"].read()
        assert hashlib.sha256(held).hexdigest() == backup["checksum_sha256"] and len(held) == backup["size_bytes"]
        assert not stored(cloud, uid, backup["id"]).exists()  # not in the local directory

        download = client.get(f"/v1/instances/{uid}/backups/{backup['id']}/download")
        assert download.status_code == 200 and download.content == held

        cloud.driver.write_disk(guest, b"changed since")
        assert client.post(f"/v1/instances/{uid}/backups/{backup['id']}/restore").status_code == 202
        wait_for(lambda: actions_of(client, uid)[0]["status"] == "success")
        assert cloud.driver.read_disk(guest) == b"kept in s3"

        assert client.delete(f"/v1/instances/{uid}/backups/{backup['id']}").status_code == 202
        wait_for(lambda: client.get(f"/v1/instances/{uid}/backups").json()["total"] == 0)
        assert bucket.list_objects_v2(Bucket=S3_BUCKET, Prefix=f"tests/{uid}/").get("KeyCount", 0) == 0
