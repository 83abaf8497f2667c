"""`cloudlet edge`: the WAF edge alone (its nginx on loopback ports here), its configuration read from the
database (a data directory of its own, as on another machine): it serves at once, takes an app's new hostname
within a round, and stops with its nginx on SIGTERM.
Nothing is proxied: the fake driver's servers have no address this machine may send to."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cloudlet.edge import nginx
from tests.cloud import Cloud, wait_for
from tests.helpers import free_port
from tests.integration.test_instances import order, running

pytestmark = pytest.mark.skipif(not nginx.NGINX.exists(), reason="nginx is not installed (scripts/setup.sh)")


@pytest.fixture
def edge_home() -> Iterator[Path]:
    """A data directory the edge's workers (www-data) can walk down to (pytest's own are root's alone)."""
    home = Path(tempfile.mkdtemp(prefix="cloudlet-edge-cmd-"))
    home.chmod(0o711)
    yield home
    shutil.rmtree(home, ignore_errors=True)


def served_names(home: Path) -> str:
    """The text of the sites the edge's configuration in place holds."""
    return "".join(path.read_text() for path in (home / "edge").rglob("app-*.conf") if "sites" in path.parts)


def test_the_edge_runs_alone_and_follows_the_database(cloud: Cloud, edge_home: Path, tmp_path: Path) -> None:
    client = cloud.client()
    origin = running(client, client.post("/api/instances", json=order(cloud)).json()["id"])["main_ip"]
    app = client.post("/api/shield/waf", json={"name": "alone", "origin_ip": origin, "hostname": "alone.example.test"})
    assert app.status_code == 201, app.text
    settings = cloud.runtime.settings
    port = free_port()
    machine = edge_home  # as on another machine: not the data directory of this control plane
    env = {**os.environ, "CLOUDLET_DATABASE_URL": settings.effective_database_url,
           "CLOUDLET_DATA_DIR": str(machine), "CLOUDLET_SECRET_KEY": settings.jwt_secret,
           "CLOUDLET_EDGE_LISTEN": "127.0.0.1", "CLOUDLET_EDGE_HTTP_PORT": str(port),
           "CLOUDLET_EDGE_HTTPS_PORT": str(free_port())}
    log = (tmp_path / "edge.log").open("wb")
    process = subprocess.Popen([str(Path(sys.executable).parent / "cloudlet"), "edge", "--every", "1"], env=env,
                               cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        def answers() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/", headers={"Host": "nobody.example.test"},
                                 timeout=2).status_code in (404, 421)
            except httpx.HTTPError:
                return False

        wait_for(answers, timeout=60)
        assert "alone.example.test" in served_names(machine)
        added = client.post(f"/api/shield/waf/{app.json()['id']}/hostnames", json={"hostname": "more.example.test"})
        assert added.status_code == 201, added.text
        wait_for(lambda: "more.example.test" in served_names(machine), timeout=30)
        layout = nginx.Layout(machine / "edge", port, 0)
        assert nginx.master_pid(layout) is not None
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) in (0, -signal.SIGTERM)
        wait_for(lambda: nginx.master_pid(layout) is None, timeout=30)  # its nginx went with it
        assert not answers()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
        log.close()
