"""Snapshots and backups of a real guest: a `cloudlet serve` process (API and worker) takes an internal snapshot
of the guest's qcow2 disk on this machine's libvirtd and brings it back, and copies the disk into the local
backup store, serves the copy for download and writes it back.

What the guest's disk holds is read and written from inside the guest, through its serial console (logged in
as root): the tiny image's userland lives in its initramfs, so the test writes a marker straight onto the disk,
100 MiB in, past the image's 64 MiB. One guest serves every step (TCG boots are slow), through CyberPanel, Shardlyn
and the primary surface, each action on two of them.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from cloudlet.drivers.libvirt.guest import LibvirtDriver
from cloudlet.surfaces.deps import Runtime
from tests.e2e import serial_reading
from tests.e2e.test_console_libvirt import vps_id
from tests.e2e.test_instances_libvirt import (
    BOOT_SECONDS,
    DELETION_SECONDS,
    PASSWORD,
    GuestCluster,
    client,
    cluster,
    customer,
    guest_name,
    node,
    order,
    status_of,
    tiny_image,
)
from tests.helpers import mint_token
from tests.integration.test_worker import wait_for

# one real guest is enough: the integration tests run on both
pytestmark = [pytest.mark.long(seconds=180), pytest.mark.engines("postgresql")]

__all__ = ["cluster", "node", "tiny_image"]

TIMEOUT = 60.0
PROMPT_SECONDS = 15.0  # how long a prompt may take to show after Enter before Enter is pressed again
SECTOR = 204800  # 100 MiB into the disk, past the image's partition


def read_for(ws: ClientConnection, wanted: tuple[str, ...], seconds: float) -> tuple[bool, str]:
    """What the console sent until one of `wanted` appeared (True) or seconds passed (False)."""
    return serial_reading.read_until(serial_reading.from_websocket(ws), ws.send, wanted, seconds)


def read_any(ws: ClientConnection, wanted: tuple[str, ...], seconds: float = TIMEOUT) -> str:
    """What the console sent until one of `wanted` appeared; the test fails after seconds."""
    found, seen = read_for(ws, wanted, seconds)
    if not found:
        pytest.fail(f"none of {wanted!r} within {seconds}s; got {seen[-2000:]!r}")
    return seen


def prompt(serial: ClientConnection) -> str:
    """Press Enter until the last thing the guest printed is a login or shell prompt. A getty that (re)starts
    flushes its line, and with it a key typed meanwhile and what it had begun to print, so a person would
    press Enter again; and a prompt followed by more output (a getty starting over after a boot) is not
    the one to answer."""
    deadline, seen = time.monotonic() + 2 * TIMEOUT, ""
    while time.monotonic() < deadline:
        serial.send(b"\r")
        found, part = read_for(serial, ("login: ", "# "), PROMPT_SECONDS)
        seen += part
        if found and part.endswith(("login: ", "# ")):
            return part
    pytest.fail(f"no prompt within {2 * TIMEOUT}s of pressing Enter; got {seen[-2000:]!r}")


def in_guest(url: str, token: str, instance_id: str, command: str, wanted: str) -> str:
    """Run a shell command as root on the guest's serial console (logging in if needed); its output up to wanted."""
    ws = "ws://" + url.removeprefix("http://") + f"/v1/instances/{instance_id}/console"
    with connect(ws, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=TIMEOUT) as serial:
        if prompt(serial).endswith("login: "):
            serial.send(b"root\r")
            read_any(serial, ("Password: ",))
            serial.send(PASSWORD.encode() + b"\r")
            read_any(serial, ("# ",))
        serial.send(command.encode() + b"\r")
        return read_any(serial, (wanted,))


def write_marker(url: str, token: str, instance_id: str, marker: str) -> None:
    """Write marker onto the guest's disk (flushed) and read it back."""
    in_guest(url, token, instance_id, f"printf '{marker}' | dd of=/dev/vda bs=512 seek={SECTOR} conv=notrunc,fsync "
             "2>/dev/null; echo written-$((40+2))", "written-42")
    assert read_marker(url, token, instance_id) == marker


def read_marker(url: str, token: str, instance_id: str) -> str:
    """The 10-byte marker on the guest's disk."""
    seen = in_guest(url, token, instance_id,
                    f"echo \"got-$(dd if=/dev/vda bs=512 skip={SECTOR} count=1 2>/dev/null | head -c 10)-end\"",
                    "-end\r\n")
    line = next(line for line in seen.splitlines() if line.startswith("got-") and line.endswith("-end"))
    return line.removeprefix("got-").removesuffix("-end")


def asked(send: Callable[[], httpx.Response]) -> httpx.Response:
    """An action's request; while the reconciler shows the instance "unknown" (its node not heard from for a
    moment on this loaded machine: 409), it is asked again for up to a minute."""
    answers: list[httpx.Response] = []

    def ask() -> bool:
        answers.append(send())
        return not (answers[-1].status_code == 409 and "unknown" in answers[-1].text)

    wait_for(ask, "the instance to be known again", seconds=60)
    return answers[-1]


def last_action(http: httpx.Client, instance_id: str) -> dict[str, Any] | None:
    """The instance's newest action once it has ended and the instance is free again; else None."""
    action: dict[str, Any] = http.get(f"/api/instances/{instance_id}/actions").json()[0]
    detail = http.get(f"/api/instances/{instance_id}").json()
    return action if action["status"] != "running" and not detail["locked"] else None


def ended(http: httpx.Client, instance_id: str, command: str) -> dict[str, Any]:
    """Wait for the newest action (of that command) to end; it must have succeeded."""
    action: dict[str, Any] = wait_for(lambda: last_action(http, instance_id), f"the {command} to end",
                                      seconds=BOOT_SECONDS)
    assert action["command"] == command and action["status"] == "success", action
    return action


def test_a_real_guest_gets_its_disk_back_from_snapshots_and_backups_on_two_surfaces(
        runtime: Runtime, node: LibvirtDriver, cluster: GuestCluster) -> None:
    _process, url = cluster.serve()
    person = customer(runtime)
    panel = mint_token(runtime, person, "vps:read", "vps:write")
    with client(url, person) as http, httpx.Client(base_url=url, timeout=120,
                                                   headers={"Authorization": f"Bearer {panel}"}) as cp:
        created = http.post("/api/instances", json=order(runtime, person, "snap-1.example.com"))
        assert created.status_code == 201, created.text
        uid = created.json()["id"]
        wait_for(lambda: status_of(http, uid) == "running", "the guest to run", seconds=BOOT_SECONDS)
        guest, vps = guest_name(runtime, uid), vps_id(runtime, uid)

        # disk-only snapshots of the running guest, one through CyberPanel and one through the primary surface,
        # each with its own marker on the disk; each restore (on the other surface) brings its marker back
        write_marker(url, person.token, uid, "marker-one")
        made = asked(lambda: cp.post(f"/api/v1/vps/{vps}/snapshots/create", json={
            "name": "first", "description": "marker one", "include_ram": False}))
        assert made.status_code == 200, made.text
        ended(http, uid, "snapshot")
        write_marker(url, person.token, uid, "marker-two")
        made = asked(lambda: http.post(f"/api/instances/{uid}/snapshots", json={"name": "second",
                                                                               "description": "marker two"}))
        assert made.status_code == 202, made.text
        ended(http, uid, "snapshot")
        assert sorted(node.list_snapshots(guest)) == ["first", "second"]
        listed = cp.get(f"/api/v1/vps/{vps}/snapshots").json()["data"]["snapshots"]
        assert [(s["name"], s["description"], s["vmstate"]) for s in listed] == [("first", "marker one", False),
                                                                                ("second", "marker two", False)]
        assert [s["name"] for s in http.get(f"/api/instances/{uid}/snapshots").json()] == ["first", "second"]
        refused = http.post(f"/api/instances/{uid}/reinstall", json={"os_template_id": 1, "os_name": "x"})
        assert refused.status_code == 409 and refused.json()["code"] == "SNAPSHOTS_EXIST", refused.text

        assert asked(lambda: http.post(f"/api/instances/{uid}/snapshots/first/restore")).status_code == 202
        restored = ended(http, uid, "restore")
        assert "is up" in restored["tasks"][2]["detail"]  # powered off, reverted, booted afresh
        wait_for(lambda: status_of(http, uid) == "running", "running after the restore", seconds=60)
        assert read_marker(url, person.token, uid) == "marker-one"
        assert asked(lambda: cp.post(f"/api/v1/vps/{vps}/snapshots/second/restore")).status_code == 200
        ended(http, uid, "restore")
        wait_for(lambda: status_of(http, uid) == "running", "running after the restore", seconds=60)
        assert read_marker(url, person.token, uid) == "marker-two"
        assert asked(lambda: cp.delete(f"/api/v1/vps/{vps}/snapshots/first")).status_code == 200
        ended(http, uid, "discard")
        assert asked(lambda: http.delete(f"/api/instances/{uid}/snapshots/second")).status_code == 202
        ended(http, uid, "discard")
        assert node.list_snapshots(guest) == []

        # backups (the guest paused for each copy), one through Shardlyn and one through the primary surface,
        # downloaded with their checksums, each written back through the other surface after a change
        first = backup_of(http, f"/v1/instances/{uid}/backups", uid)  # marker-two
        write_marker(url, person.token, uid, "marker-3rd")
        second = backup_of(http, f"/api/instances/{uid}/backups", uid)  # marker-3rd
        write_marker(url, person.token, uid, "marker-4th")
        assert asked(lambda: http.post(f"/api/instances/{uid}/backups/{first}/restore")).status_code == 202
        ended(http, uid, "restore")
        wait_for(lambda: status_of(http, uid) == "running", "running after the restore", seconds=60)
        assert read_marker(url, person.token, uid) == "marker-two"
        assert asked(lambda: http.post(f"/v1/instances/{uid}/backups/{second}/restore")).status_code == 202
        ended(http, uid, "restore")
        wait_for(lambda: status_of(http, uid) == "running", "running after the restore", seconds=60)
        assert read_marker(url, person.token, uid) == "marker-3rd"
        assert asked(lambda: http.delete(f"/v1/instances/{uid}/backups/{first}")).status_code == 202
        ended(http, uid, "discard")
        assert [b["id"] for b in http.get(f"/api/instances/{uid}/backups").json()] == [second]

        # deleting the server takes its last backup out of the store too
        stored = runtime.settings.data_dir / "backups"
        deleted = asked(lambda: http.request("DELETE", f"/api/instances/{uid}", json={"mode": "immediate"}))
        assert deleted.status_code == 200, deleted.text
        wait_for(lambda: status_of(http, uid) == "gone", "the deletion", seconds=DELETION_SECONDS)
        assert guest not in {g.name for g in node.list_guests()}
        wait_for(lambda: not any(p.is_file() for p in stored.rglob("*")), "the backup to leave the store", seconds=60)


def backup_of(http: httpx.Client, path: str, uid: str) -> str:
    """Take a backup through `path` (a surface's backups endpoint) and check its download; its id."""
    started = asked(lambda: http.post(path))
    assert started.status_code == 202, started.text
    bid = str(started.json()["id"])
    ended(http, uid, "backup")
    backup = http.get(f"{path}/{bid}").json()
    assert backup["status"] == "ready", backup
    wait_for(lambda: status_of(http, uid) == "running", "running after the copy", seconds=60)  # resumed
    with http.stream("GET", f"{path}/{bid}/download") as download:
        assert download.status_code == 200
        digest, size = hashlib.sha256(), 0
        for chunk in download.iter_bytes():
            digest.update(chunk)
            size += len(chunk)
        assert download.headers["x-checksum-sha256"] == backup["checksum_sha256"]
    assert (digest.hexdigest(), size) == (backup["checksum_sha256"], backup["size_bytes"])
    return bid
