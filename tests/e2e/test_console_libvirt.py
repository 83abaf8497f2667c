"""Consoles of a real guest: a `cloudlet serve` process proxies a real websocket client (the `websockets`
library) to QEMU's VNC server, which asks for VNC authentication and then shows its screen, and carries
the guest's serial console (log in as root, run a command) and its serial log, live and after the fact.

One guest per database engine, shared by every step, since a TCG boot is slow on a loaded machine.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from cloudlet.drivers.libvirt.guest import LibvirtDriver
from cloudlet.instances import repository as instance_rows
from cloudlet.surfaces.deps import Runtime
from tests.e2e import serial_reading
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
from tests.integration.test_worker import wait_for
from tests.rfb import RfbRefused, ServerInit, Transport, handshake

# one real guest is enough: tests/integration/test_console.py runs on both
pytestmark = [pytest.mark.long(seconds=35), pytest.mark.engines("sqlite")]

__all__ = ["cluster", "node", "tiny_image"]

PUBLIC_URL = "https://console.example.test"  # what links are made of; the test connects to the server itself
TIMEOUT = 30.0


def local(url: str, link: str) -> str:
    """The link's websocket on the test's server."""
    assert link.startswith("wss://console.example.test/"), link  # an https public URL gives wss links
    return "ws://" + url.removeprefix("http://") + link.removeprefix("wss://console.example.test")


def over_websocket(ws: ClientConnection) -> Transport:
    """RFB over the proxy's binary frames."""
    def receive() -> bytes:
        data = ws.recv(timeout=TIMEOUT)
        assert isinstance(data, bytes), f"a text frame: {data!r}"
        return data
    return Transport(receive, ws.send)


def screen(url: str, link: str, password: str) -> ServerInit:
    """Version, VNC authentication and ServerInit through the server's websocket proxy."""
    with connect(local(url, link), subprotocols=["binary"], open_timeout=TIMEOUT) as ws:  # type: ignore[list-item]
        return handshake(over_websocket(ws), password)


def read_until(ws: ClientConnection, wanted: str, seconds: float = TIMEOUT) -> str:
    """What a websocket sent (binary or text frames) until `wanted` appeared."""
    found, seen = serial_reading.read_until(serial_reading.from_websocket(ws), ws.send, (wanted,), seconds)
    if not found:
        pytest.fail(f"no {wanted!r} within {seconds}s; got {seen[-2000:]!r}")
    return seen


def console_link(http: httpx.Client, path: str) -> dict[str, Any]:
    """A console link; a node busy with the guest (503), or not heard from for a moment on this loaded machine
    (409: the reconciler shows the instance "unknown"), is asked again for up to a minute."""
    answers: list[httpx.Response] = []

    def ask() -> dict[str, Any] | None:
        answers.append(http.get(path))
        if answers[-1].status_code in (409, 503):
            return None
        assert answers[-1].status_code == 200, answers[-1].text
        found: dict[str, Any] = answers[-1].json()
        return found

    try:
        return wait_for(ask, f"a console link from {path}", seconds=60)
    except pytest.fail.Exception:
        pytest.fail(f"no console link from {path}: {answers[-1].status_code} {answers[-1].text}")


def vps_id(runtime: Runtime, instance_id: str) -> int:
    """The instance's numeric id (CyberPanel's vps_id)."""
    with runtime.db.session(write=False) as session:
        row = instance_rows.instance(session, instance_id)
        assert row is not None
        return row.id


def test_vnc_and_serial_consoles_of_a_real_guest(runtime: Runtime, node: LibvirtDriver,
                                                  cluster: GuestCluster) -> None:
    cluster.extra = {"CLOUDLET_PUBLIC_URL": PUBLIC_URL}
    _process, url = cluster.serve()
    person = customer(runtime)
    bearer = {"Authorization": f"Bearer {person.token}"}
    with client(url, person) as http:
        created = http.post("/api/instances", json=order(runtime, person, "console-1.example.com"))
        assert created.status_code == 201, created.text
        server: dict[str, Any] = created.json()
        wait_for(lambda: status_of(http, server["id"]) == "running", "the guest to run", seconds=BOOT_SECONDS)
        guest = guest_name(runtime, server["id"])

        # VNC: the link's token opens QEMU's own RFB server once, which asks for the link's password
        link = console_link(http, f"/api/instances/{server['id']}/vnc")
        shown = screen(url, link["url"], link["password"])
        assert shown.version == b"RFB 003.008\n" and shown.security_types == [2]
        assert shown.width > 0 and shown.height > 0 and shown.name == f"QEMU (cloudlet-{guest})"
        with pytest.raises(InvalidStatus) as used:
            screen(url, link["url"], link["password"])
        assert used.value.response.status_code == 401
        wrong = console_link(http, f"/api/instances/{server['id']}/vnc")
        with pytest.raises(RfbRefused):
            screen(url, wrong["url"], "not-it")
        panel = console_link(http, f"/api/v1/vps/{vps_id(runtime, server['id'])}/console")["data"]
        assert panel["type"] == "novnc" and panel["expires_in_seconds"] == 300
        assert screen(url, panel["console_url"], panel["password"]).name == f"QEMU (cloudlet-{guest})"

        # the serial console: log in as root with the instance's password and run a command; the live log
        # shows what the guest printed at boot, then the session as it happens
        ws_base = "ws://" + url.removeprefix("http://")
        with connect(f"{ws_base}/v1/instances/{server['id']}/logs", additional_headers=bearer,
                     open_timeout=TIMEOUT) as live:
            assert "CLOUDLET_READY" in read_until(live, "CLOUDLET_READY")
            with connect(f"{ws_base}/v1/instances/{server['id']}/console", additional_headers=bearer,
                         open_timeout=TIMEOUT) as serial:
                before, after = serial_reading.log_in(serial_reading.from_websocket(serial), serial.send, PASSWORD,
                                                      ("# ",), TIMEOUT)
                assert "console-1 login: " in before and "# " in after, (before + after)[-2000:]
                serial.send(b"echo hi-$((6*7))\r")
                assert "\nhi-42" in read_until(serial, "\nhi-42")
            assert "hi-42" in read_until(live, "hi-42")

        history = http.get(f"/v1/instances/{server['id']}/logs/history").json()
        assert any(line.startswith("CLOUDLET_READY") for line in history["logs"])
        assert "hi-42" in history["logs"]
        download = http.get(f"/v1/instances/{server['id']}/logs/download")
        assert download.status_code == 200 and "hi-42" in download.text
        assert httpx.get(f"{url}/v1/instances/{server['id']}/logs/download").status_code == 401

        deleted = http.request("DELETE", f"/api/instances/{server['id']}", json={"mode": "immediate"})
        assert deleted.status_code == 200, deleted.text
        wait_for(lambda: status_of(http, server["id"]) == "gone", "the deletion", seconds=DELETION_SECONDS)
        assert guest not in {g.name for g in node.list_guests()}
