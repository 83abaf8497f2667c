"""A second edge machine: `cloudlet edge` in a data directory of its own (as on another machine), following the
control plane's database. The control plane's worker orders a hostname's certificate from Debian's pebble, whose
HTTP-01 check reaches the second edge, which does not hold the token: its nginx asks the API (`cloudlet api`,
GET /.well-known/acme-challenge/{token}), which answers from the database. The certificate is issued, and the
second edge serves it, read from the database, over HTTPS that verifies against pebble's root."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloudlet.edge import nginx
from tests import acme_server
from tests.acme_server import AcmeServer
from tests.cloud import Cloud, wait_for
from tests.helpers import free_port
from tests.integration.test_instances import order, running

pytestmark = pytest.mark.skipif(not (acme_server.available() and nginx.NGINX.exists()),
                                reason="pebble or nginx is missing (scripts/setup.sh with CLOUDLET_SETUP_EXTRAS=dev)")

NAME = "far.example.test"


@pytest.fixture
def ports() -> dict[str, int]:
    return {"api": free_port(), "http": free_port(), "https": free_port()}


@pytest.fixture
def ca(ports: dict[str, int], tmp_path: Path) -> Iterator[AcmeServer]:
    with AcmeServer(ports["http"], workdir=tmp_path / "pebble") as server:  # HTTP-01 reaches the second edge
        yield server


@pytest.fixture
def machine_b() -> Iterator[Path]:
    """The second machine's data directory, which its nginx workers (www-data) can walk down to."""
    home = Path(tempfile.mkdtemp(prefix="cloudlet-edge-b-"))
    home.chmod(0o711)
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def settings_overrides(ca: AcmeServer) -> dict[str, Any]:
    return {"acme_directory": ca.directory_url, "acme_ca_bundle": ca.ca_bundle}


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as written:
        return subprocess.Popen([str(Path(sys.executable).parent / "cloudlet"), *args], env=env, cwd=log.parent,
                                stdout=written, stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def test_an_edge_answers_a_challenge_it_does_not_hold_through_the_api(
        cloud: Cloud, ca: AcmeServer, ports: dict[str, int], machine_b: Path, tmp_path: Path) -> None:
    settings = cloud.runtime.settings
    shared = {**os.environ, "CLOUDLET_DATABASE_URL": settings.effective_database_url,
              "CLOUDLET_SECRET_KEY": settings.jwt_secret}
    api = spawn(["api", "--port", str(ports["api"])], {**shared, "CLOUDLET_DATA_DIR": str(settings.data_dir)},
                tmp_path / "api.log")
    edge = spawn(["edge", "--every", "1"], {
        **shared, "CLOUDLET_DATA_DIR": str(machine_b), "CLOUDLET_EDGE_LISTEN": "127.0.0.1",
        "CLOUDLET_EDGE_HTTP_PORT": str(ports["http"]), "CLOUDLET_EDGE_HTTPS_PORT": str(ports["https"]),
        "CLOUDLET_EDGE_CHALLENGE_URL": f"http://127.0.0.1:{ports['api']}"}, tmp_path / "edge.log")
    try:
        def up(port: int) -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/.well-known/acme-challenge/nothing-here",
                                 timeout=2).status_code == 404
            except httpx.HTTPError:
                return False

        wait_for(lambda: up(ports["api"]) and up(ports["http"]), timeout=90)
        client = cloud.client()
        origin = running(client, client.post("/api/instances", json=order(cloud)).json()["id"])["main_ip"]
        app = client.post("/api/shield/waf", json={"name": "far", "origin_ip": origin, "hostname": NAME}).json()

        def status() -> str:
            [host] = client.get(f"/api/shield/waf/{app['id']}").json()["hostnames"]
            return str(host["ssl_status"])

        wait_for(lambda: status() != "pending", timeout=90)
        assert status() == "issued", client.get(f"/api/shield/waf/{app['id']}").json()
        assert not (machine_b / "edge" / "acme-challenge").is_dir() or not any(
            (machine_b / "edge" / "acme-challenge").iterdir())  # the second edge never held the token

        root = ssl.create_default_context(cadata=ca.issuing_root_pem().decode())

        def serves_it() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", ports["https"]), timeout=5) as raw, \
                        root.wrap_socket(raw, server_hostname=NAME) as tls:
                    return tls.getpeercert() is not None
            except (OSError, ssl.SSLError):
                return False

        wait_for(serves_it, timeout=30)  # the second edge's next round writes the certificate from the database
    finally:
        stop(edge)
        stop(api)
