"""A real `cloudlet serve` process on a free port, for tests that go through HTTP like a user."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cloudlet.config import Settings
from cloudlet.nodes.service import NODE_FILE
from tests.helpers import free_port

VENV_BIN = Path(sys.executable).parent



@pytest.fixture
def server_env(tmp_path: Path, database_url: str) -> dict[str, str]:
    """The environment of the test's server: its own data directory and database.

    When this machine is a prepared libvirt node, the data directory gets the node's facts file, so
    the server registers this machine as its local node on start, as `scripts/serve.sh` does.
    """
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    facts = Path(Settings().data_dir) / NODE_FILE
    if facts.exists():
        shutil.copy(facts, data_dir / NODE_FILE)
    env = {**os.environ, "CLOUDLET_DATA_DIR": str(data_dir), "CLOUDLET_DATABASE_URL": database_url,
           "CLOUDLET_ARGON2_MEMORY_KIB": "8192", "CLOUDLET_ARGON2_TIME_COST": "1",
           "CLOUDLET_SHIELD_TABLE": f"cloudlet_s{uuid.uuid4().hex[:10]}"}  # many servers share this kernel
    env.pop("CLOUDLET_REDIS_URL", None)
    return env


@pytest.fixture
def server(tmp_path: Path, server_env: dict[str, str]) -> Iterator[str]:
    """The base URL of a freshly started server on an empty database."""
    port = free_port()
    env = server_env
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen([str(VENV_BIN / "cloudlet"), "serve", "--port", str(port)],
                               env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        # migrations from nothing, the catalog's seed and a first heartbeat of the local node come first: on a
        # busy CI machine (other e2e servers, guests booting) that has taken more than 30 s
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start:\n{(tmp_path / 'server.log').read_text()}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
        subprocess.run(["nft", "delete", "table", "inet", env["CLOUDLET_SHIELD_TABLE"]], capture_output=True,
                       timeout=30, check=False)
