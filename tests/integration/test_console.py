"""Consoles over real websockets: the VNC link and its proxy, the serial console and the serial log.

The cloud's node is a FakeDriver, whose guests have a real RFB server on 127.0.0.1 and a getty-like
serial line; the app runs in a real uvicorn server (in a thread of the test) and a real websocket
client (the `websockets` library) talks to it, so the handshakes, refusals and frames are the wire's.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from cloudlet.app import create_app
from cloudlet.instances import console
from cloudlet.instances import repository as instance_rows
from cloudlet.instances.console_tickets import ConsoleTicket
from cloudlet.instances.models import InstanceStatus
from cloudlet.kit import clock
from tests.cloud import Cloud, wait_for
from tests.conftest import make_settings
from tests.helpers import free_port, make_user, mint_token
from tests.integration.test_instances import order, running
from tests.rfb import RfbRefused, ServerInit, Transport, handshake

TIMEOUT = 10.0


@pytest.fixture
def server(cloud: Cloud) -> Iterator[str]:
    """The cloud's app in a real uvicorn server on 127.0.0.1; its ws:// base URL."""
    port = free_port()
    config = uvicorn.Config(create_app(runtime=cloud.runtime), host="127.0.0.1", port=port, log_level="warning",
                            lifespan="off")
    process = uvicorn.Server(config)
    thread = threading.Thread(target=process.run, daemon=True)
    thread.start()
    wait_for(lambda: process.started, timeout=TIMEOUT)
    try:
        yield f"ws://127.0.0.1:{port}"
    finally:
        process.should_exit = True
        thread.join(timeout=TIMEOUT)


@pytest.fixture
def instance(cloud: Cloud) -> dict[str, Any]:
    """A running instance of the customer."""
    client = cloud.client()
    created = client.post("/api/instances", json=order(cloud))
    assert created.status_code == 201, created.text
    return running(client, created.json()["id"])


def local(server: str, url: str) -> str:
    """The link's path and query on the test's server (links carry CLOUDLET_PUBLIC_URL, http://cloudlet.test)."""
    return server + url.split("cloudlet.test", 1)[1]


def over_websocket(ws: ClientConnection) -> Transport:
    """RFB over the proxy's binary frames."""
    def receive() -> bytes:
        data = ws.recv(timeout=TIMEOUT)
        assert isinstance(data, bytes), f"a text frame: {data!r}"
        return data
    return Transport(receive, ws.send)


def screen(server: str, link: dict[str, Any], password: str | None = None) -> ServerInit:
    """The RFB handshake through the link's websocket, up to ServerInit."""
    with connect(local(server, link["url"]), subprotocols=["binary"], open_timeout=TIMEOUT) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "binary"
        return handshake(over_websocket(ws), password or link["password"])


def refusal(url: str, **headers: str) -> httpx.Response:
    """The HTTP answer that turned a websocket handshake down."""
    with pytest.raises(InvalidStatus) as refused, connect(url, additional_headers=headers, open_timeout=TIMEOUT):
        pass
    response = refused.value.response
    return httpx.Response(response.status_code, content=bytes(response.body))


def test_a_vnc_link_opens_the_guests_screen_once(cloud: Cloud, instance: dict[str, Any], server: str) -> None:
    reply = cloud.client().get(f"/api/instances/{instance['id']}/vnc")
    assert reply.status_code == 200, reply.text
    assert reply.headers["cache-control"] == "no-store"
    link = reply.json()
    assert link["instance_id"] == instance["id"] and link["expires_in_seconds"] == 300
    assert link["url"] == f"ws://cloudlet.test/api/consoles/vnc?token={link['token']}"  # http public URL: ws
    assert len(link["password"]) == 8 and len(link["token"]) >= 40
    with cloud.runtime.db.session(write=False) as session:
        (ticket,) = session.query(ConsoleTicket).all()
        assert ticket.digest == hashlib.sha256(link["token"].encode()).hexdigest()
        assert link["token"] not in {str(value) for value in vars(ticket).values()}  # only its digest is kept

    shown = screen(server, link)
    assert shown.security_types == [2]  # VNC authentication, nothing weaker
    assert (shown.width, shown.height) == (640, 480) and shown.bits_per_pixel == 32
    guest = next(g.name for g in cloud.driver.list_guests())
    assert shown.name == f"Cloudlet fake ({guest})"

    again = refusal(local(server, link["url"]))
    assert again.status_code == 401 and again.json()["code"] == "CONSOLE_TOKEN_USED"


def test_the_guests_vnc_server_checks_the_password_and_a_newer_link_replaces_it(
        cloud: Cloud, instance: dict[str, Any], server: str) -> None:
    client = cloud.client()
    first = client.get(f"/api/instances/{instance['id']}/vnc").json()
    with pytest.raises(RfbRefused, match="Authentication failed"):
        screen(server, first, password="not-it")
    first, second = (client.get(f"/api/instances/{instance['id']}/vnc").json() for _ in range(2))
    assert first["password"] != second["password"]
    with pytest.raises(RfbRefused, match="Authentication failed"):  # its password was replaced
        screen(server, first)
    assert screen(server, second).width == 640


def test_unknown_missing_and_expired_tokens_are_refused(cloud: Cloud, instance: dict[str, Any], server: str) -> None:
    link = cloud.client().get(f"/api/instances/{instance['id']}/vnc").json()
    unknown = refusal(f"{server}/api/consoles/vnc?token=not-a-token")
    assert unknown.status_code == 401 and unknown.json()["code"] == "INVALID_CONSOLE_TOKEN"
    assert refusal(f"{server}/api/consoles/vnc").status_code == 401
    with clock.travel(timedelta(seconds=301)):
        expired = refusal(local(server, link["url"]))
    assert expired.status_code == 401 and expired.json()["code"] == "CONSOLE_TOKEN_EXPIRED"


def test_a_plain_get_on_a_websocket_endpoint_answers_426(cloud: Cloud, instance: dict[str, Any]) -> None:
    plain = cloud.api.get("/api/consoles/vnc")
    assert plain.status_code == 426 and plain.headers["upgrade"] == "websocket"
    assert plain.json()["code"] == "UPGRADE_REQUIRED"
    assert cloud.api.get(f"/v1/instances/{instance['id']}/console").status_code == 401
    assert cloud.client().get(f"/v1/instances/{instance['id']}/console").status_code == 426
    assert "error" in cloud.client().get(f"/v1/instances/{instance['id']}/logs").json()


def test_the_link_follows_the_public_urls_scheme(tmp_path: Path) -> None:
    secure = make_settings(tmp_path, "sqlite://", public_url="https://cloud.example.com/panel/")
    assert console.websocket_base(secure) == "wss://cloud.example.com/panel"
    plain = make_settings(tmp_path, "sqlite://", public_url="http://127.0.0.1:8080")
    assert console.websocket_base(plain) == "ws://127.0.0.1:8080"


def test_cyberpanel_console_has_the_references_shape_and_opens_the_screen(
        cloud: Cloud, instance: dict[str, Any], server: str) -> None:
    with cloud.runtime.db.session(write=False) as session:
        row = instance_rows.instance(session, instance["id"])
        assert row is not None
        vps_id = row.id
    reply = cloud.client().get(f"/api/v1/vps/{vps_id}/console")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["success"] is True and body["message"] == "Console URL generated. Valid for 5 minutes."
    data = body["data"]
    assert data["vps_id"] == vps_id and data["type"] == "novnc" and data["expires_in_seconds"] == 300
    assert data["console_url"].startswith("ws://cloudlet.test/api/consoles/vnc?token=")
    shown = screen(server, {"url": data["console_url"], "password": data["password"]})
    assert (shown.width, shown.height) == (640, 480)


def test_consoles_of_others_of_stopped_and_of_suspended_instances_are_refused(
        cloud: Cloud, instance: dict[str, Any], server: str) -> None:
    stranger = make_user(cloud.runtime, "stranger@example.com")
    other = cloud.client(stranger)
    assert other.get(f"/api/instances/{instance['id']}/vnc").status_code == 404
    assert other.get(f"/v1/instances/{instance['id']}/logs/history").status_code == 404
    refused = refusal(f"{server}/v1/instances/{instance['id']}/console", Authorization=f"Bearer {stranger.token}")
    assert refused.status_code == 404 and "error" in refused.json()
    reader = mint_token(cloud.runtime, cloud.customer, "instances:read")
    assert cloud.api.as_(reader).get(f"/api/instances/{instance['id']}/vnc").status_code == 200
    typing = refusal(f"{server}/v1/instances/{instance['id']}/console", Authorization=f"Bearer {reader}")
    assert typing.status_code == 403  # typing into the server takes instances:write
    assert refusal(f"{server}/v1/instances/{instance['id']}/logs").status_code == 401

    for status, code in ((InstanceStatus.STOPPED, 409), (InstanceStatus.SUSPENDED, 403)):
        with cloud.runtime.db.session() as session:
            row = instance_rows.instance(session, instance["id"])
            assert row is not None
            row.status = status
        assert cloud.client().get(f"/api/instances/{instance['id']}/vnc").status_code == code
        assert refusal(f"{server}/v1/instances/{instance['id']}/console",
                       Authorization=f"Bearer {cloud.customer.token}").status_code == code


def test_a_link_made_while_running_is_refused_once_the_instance_stops(
        cloud: Cloud, instance: dict[str, Any], server: str) -> None:
    link = cloud.client().get(f"/api/instances/{instance['id']}/vnc").json()
    with cloud.runtime.db.session() as session:
        row = instance_rows.instance(session, instance["id"])
        assert row is not None
        row.status = InstanceStatus.STOPPED
        cloud.driver.poweroff(row.guest_name)  # the node agrees, so a reconcile in between changes nothing
    refused = refusal(local(server, link["url"]))
    assert refused.status_code == 409 and refused.json()["code"] == "INVALID_STATE"


def read_until(ws: ClientConnection, wanted: bytes) -> bytes:
    """What the serial console sent until `wanted` appeared."""
    seen = b""
    deadline = time.monotonic() + TIMEOUT
    while wanted not in seen:
        frame = ws.recv(timeout=max(0.1, deadline - time.monotonic()))
        seen += frame if isinstance(frame, bytes) else frame.encode()
    return seen


def test_the_serial_console_is_interactive_and_a_new_session_takes_it_over(
        cloud: Cloud, instance: dict[str, Any], server: str) -> None:
    url = f"{server}/v1/instances/{instance['id']}/console"
    with connect(url, additional_headers={"Authorization": f"Bearer {cloud.customer.token}"},
                 open_timeout=TIMEOUT) as first:
        first.send(b"\r")
        assert read_until(first, b"login: ").endswith(b"web-1 login: ")
        first.send("root")  # a text frame is typed as well
        assert read_until(first, b"root") == b"root"
        assert refusal(f"{url}?token={cloud.customer.token}").status_code == 401  # no credential in a URL
        with connect(url, additional_headers={"X-API-Key": cloud.customer.token}, open_timeout=TIMEOUT) as second:
            with pytest.raises(ConnectionClosed) as ended:
                while True:
                    first.recv(timeout=TIMEOUT)
            assert ended.value.rcvd is not None and ended.value.rcvd.code == 1000
            assert "ended" in ended.value.rcvd.reason
            second.send(b"\n")
            assert b"web-1 login: " in read_until(second, b"login: ")


def test_live_logs_history_and_download_show_the_serial_log(
        cloud: Cloud, instance: dict[str, Any], server: str) -> None:
    url = f"{server}/v1/instances/{instance['id']}/logs"
    with connect(url, additional_headers={"Authorization": f"Bearer {cloud.customer.token}"},
                 open_timeout=TIMEOUT) as live:
        first = live.recv(timeout=TIMEOUT)
        assert isinstance(first, str) and "CLOUDLET_READY" in first and first.startswith("fake firmware")
    client = cloud.client()
    history = client.get(f"/v1/instances/{instance['id']}/logs/history").json()
    assert history["instance_id"] == instance["id"] and history["total_lines"] == 3
    assert history["logs"] == first.splitlines() and history["truncated"] is False
    tail = client.get(f"/v1/instances/{instance['id']}/logs/history", params={"lines": 1}).json()
    assert tail["logs"] == first.splitlines()[-1:] and tail["truncated"] is True
    assert client.get(f"/v1/instances/{instance['id']}/logs/history", params={"lines": 0}).status_code == 400
    download = client.get(f"/v1/instances/{instance['id']}/logs/download")
    assert download.status_code == 200 and download.text == first
    assert download.headers["content-type"].startswith("text/plain")
    assert download.headers["content-disposition"] == f'attachment; filename="{instance["id"]}-serial.log"'
