"""A real `cloudlet serve` process on a free port, for tests that go through HTTP like a user."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import free_port

VENV_BIN = Path(sys.executable).parent



@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[str]:
    """The base URL of a freshly started server on an empty database."""
    port = free_port()
    env = {**os.environ, "CLOUDLET_DATA_DIR": str(tmp_path / "data"), "CLOUDLET_DATABASE_URL": database_url,
           "CLOUDLET_ARGON2_MEMORY_KIB": "8192", "CLOUDLET_ARGON2_TIME_COST": "1"}
    env.pop("CLOUDLET_REDIS_URL", None)
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen([str(VENV_BIN / "cloudlet"), "serve", "--port", str(port)],
                               env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
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
