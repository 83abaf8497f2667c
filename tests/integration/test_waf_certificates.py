"""A WAF hostname's certificate as an action, on both engines: the edge's real nginx (started here, on loopback
ports) answers the HTTP-01 challenge of Debian's real pebble; a certificate_issue action records its four tasks
and the hostname becomes `issued`, served over HTTPS; a name the CA cannot reach fails with the CA's own reason
in the hostname and the action, and retry-ssl then orders again. The origin is a fake-driver server: only the
certificate is under test here (tests/e2e/test_waf_libvirt.py proxies to a real guest)."""

from __future__ import annotations

import shutil
import socket
import ssl
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloudlet.actions import repository as action_repository
from cloudlet.edge import nginx, push, server
from cloudlet.edge import repository as edge_repository
from cloudlet.edge import service as edge_service
from cloudlet.kit import clock
from cloudlet.surfaces.deps import Runtime
from tests import acme_server
from tests.acme_server import AcmeServer
from tests.cloud import Cloud, wait_for
from tests.helpers import free_port, make_user
from tests.integration.test_instances import order, running

pytestmark = pytest.mark.skipif(not (acme_server.available() and nginx.NGINX.exists()),
                                reason="pebble or nginx is missing (scripts/setup.sh with CLOUDLET_SETUP_EXTRAS=dev)")

NAME, UNREACHABLE = "cert.example.test", "away.example.test"


@pytest.fixture
def edge_ports() -> tuple[int, int]:
    return free_port(), free_port()


@pytest.fixture
def ca(edge_ports: tuple[int, int], tmp_path: Path) -> Iterator[AcmeServer]:
    with AcmeServer(edge_ports[0], workdir=tmp_path / "pebble") as server:
        yield server


@pytest.fixture
def edge_home() -> Iterator[Path]:
    """A data directory the edge's workers (www-data) can walk down to (pytest's own are root's alone)."""
    home = Path(tempfile.mkdtemp(prefix="cloudlet-waf-"))
    home.chmod(0o711)
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def settings_overrides(ca: AcmeServer, edge_ports: tuple[int, int], edge_home: Path) -> dict[str, Any]:
    return {"data_dir": edge_home, "acme_directory": ca.directory_url, "acme_ca_bundle": ca.ca_bundle,
            "edge_listen": "127.0.0.1", "edge_http_port": edge_ports[0], "edge_https_port": edge_ports[1]}


@pytest.fixture
def edge(runtime: Runtime) -> Iterator[server.EdgeServer]:
    running = server.EdgeServer(push.layout(runtime.settings))
    running.start()
    try:
        yield running
    finally:
        running.stop()


def certificate_actions(cloud: Cloud) -> list[dict[str, Any]]:
    ops = cloud.api.as_(make_user(cloud.runtime, f"ops{free_port()}@example.com", admin=True).token)
    listed = ops.get("/api/admin/actions", params={"running": "false", "limit": 1000}).json()
    return [action for action in listed if action["command"] == "certificate_issue"]


def hostname(client: httpx.Client, app_id: int, name: str) -> dict[str, Any]:
    [found] = [h for h in client.get(f"/api/shield/waf/{app_id}").json()["hostnames"] if h["hostname"] == name]
    return found


def test_a_hostname_gets_its_certificate_through_the_edge(cloud: Cloud, ca: AcmeServer, edge: server.EdgeServer,
                                                          edge_ports: tuple[int, int]) -> None:
    client = cloud.client()
    origin = running(client, client.post("/api/instances", json=order(cloud)).json()["id"])["main_ip"]
    app = client.post("/api/shield/waf", json={"name": "cert", "origin_ip": origin, "hostname": NAME}).json()
    assert app["hostnames"][0]["ssl_status"] == "pending"
    wait_for(lambda: hostname(client, app["id"], NAME)["ssl_status"] == "issued", timeout=60)
    issued = hostname(client, app["id"], NAME)
    assert issued["ssl_error"] is None and issued["ssl_expires_at"]

    [action] = certificate_actions(cloud)
    assert (action["status"], action["instance_id"], action["node_id"]) == ("success", None, None)
    with cloud.runtime.db.session(write=False) as session:
        tasks = [(t.name, t.status.value) for t in action_repository.tasks(session, action["id"])]
    assert tasks == [(name, "completed") for name in
                     ("acme_order", "acme_challenge", "acme_validate", "certificate_install", "certificate_record")]
    # the edge serves it: the TLS handshake for the name verifies against pebble's root
    root = ssl.create_default_context(cadata=ca.issuing_root_pem().decode())
    key = push.certificate_dir(cloud.runtime.settings, NAME) / "key.pem"
    assert key.stat().st_mode & 0o077 == 0
    with cloud.runtime.db.session(write=False) as session:  # the database holds the key sealed, the chain as is
        kept = edge_repository.hostname(session, issued["id"])
        assert kept is not None and "PRIVATE KEY" not in kept.cert_key_sealed
        assert kept.cert_chain.startswith("-----BEGIN CERTIFICATE-----") and kept.cert_key_sealed
    with socket.create_connection(("127.0.0.1", edge_ports[1]), timeout=10) as raw, \
            root.wrap_socket(raw, server_hostname=NAME) as tls:
        assert tls.getpeercert()["subjectAltName"] == (("DNS", NAME),)  # type: ignore[index]

    # the renewal round orders again what expires within 30 days, unless the CA asked for a pause
    soon = clock.now() + timedelta(days=20)
    with cloud.runtime.db.session() as session:
        row = edge_repository.hostname(session, issued["id"], lock=True)
        assert row is not None
        row.cert_not_after, row.cert_retry_at = soon, clock.now() + timedelta(hours=1)
    with cloud.runtime.db.session() as session:
        assert edge_service.renew_due(session, cloud.runtime.settings, clock.now()) == []
        row = edge_repository.hostname(session, issued["id"], lock=True)
        assert row is not None
        row.cert_retry_at = None
    with cloud.runtime.db.session() as session:
        assert edge_service.renew_due(session, cloud.runtime.settings, clock.now()) == [NAME]
    wait_for(lambda: [a["status"] for a in certificate_actions(cloud)] == ["success", "success"], timeout=60)
    renewed = hostname(client, app["id"], NAME)
    assert renewed["ssl_status"] == "issued" and renewed["ssl_expires_at"] > soon.isoformat()
    with cloud.runtime.db.session() as session:
        assert edge_service.renew_due(session, cloud.runtime.settings, clock.now()) == []


def test_a_challenge_the_ca_cannot_check_fails_with_its_reason_and_retry_ssl_orders_again(
        cloud: Cloud, ca: AcmeServer, edge: server.EdgeServer) -> None:
    client = cloud.client()
    origin = running(client, client.post("/api/instances", json=order(cloud)).json()["id"])["main_ip"]
    ca.point(UNREACHABLE, "127.0.0.2")  # where the edge does not listen
    app = client.post("/api/shield/waf", json={"name": "away", "origin_ip": origin, "hostname": UNREACHABLE}).json()
    wait_for(lambda: hostname(client, app["id"], UNREACHABLE)["ssl_status"] == "failed", timeout=60)
    failed = hostname(client, app["id"], UNREACHABLE)
    assert "urn:ietf:params:acme:error:connection" in failed["ssl_error"], failed
    wait_for(lambda: [a["status"] for a in certificate_actions(cloud)] == ["error"])
    [action] = certificate_actions(cloud)
    assert "connection" in action["error"]

    ca.unpoint(UNREACHABLE)
    url = f"/api/shield/waf/{app['id']}/hostnames/{failed['id']}/retry-ssl"
    retried = client.post(url)
    assert retried.status_code == 200 and retried.json()["ssl_status"] == "pending", retried.text
    wait_for(lambda: hostname(client, app["id"], UNREACHABLE)["ssl_status"] == "issued", timeout=60)
    assert [a["status"] for a in certificate_actions(cloud)] == ["success", "error"]
    assert client.post(f"/api/shield/waf/{app['id']}/hostnames/999999/retry-ssl").status_code == 404
