"""Real `cloudlet serve` and `cloudlet worker` processes: the worker starts with the server, several
executors sharing one database run each billing tick once, and everything stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloudlet.surfaces.deps import Runtime
from tests.helpers import make_user, mint_token
from tests.integration.test_worker import fund, subscribe, wait_for

CLOUDLET = str(Path(sys.executable).parent / "cloudlet")
# uvicorn shuts down gracefully on SIGTERM, then raises the signal again so the exit status tells why it ended.
STOPPED = {0, -signal.SIGTERM}


@dataclass
class Process:
    """A command we started, and the file its output goes to."""

    popen: subprocess.Popen[bytes]
    log: Path

    def events(self) -> list[dict[str, Any]]:
        """Our structlog lines (JSON), skipping uvicorn's and DBOS's own."""
        lines = self.log.read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def stop(self) -> int:
        """SIGTERM, as a service manager would send, and the exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            pytest.fail(f"{self.log.name} did not stop within 30 s on SIGTERM:\n{self.log.read_text()}")


@dataclass
class Cluster:
    """Starts processes on the test's database and makes sure none outlives the test."""

    runtime: Runtime
    database_url: str
    tmp_path: Path
    started: list[Process]

    def env(self) -> dict[str, str]:
        env = {**os.environ, "CLOUDLET_DATA_DIR": str(self.runtime.settings.data_dir),
               "CLOUDLET_DATABASE_URL": self.database_url, "CLOUDLET_SECRET_KEY": self.runtime.settings.jwt_secret,
               "CLOUDLET_ARGON2_MEMORY_KIB": "8192", "CLOUDLET_ARGON2_TIME_COST": "1",
               "CLOUDLET_BILLING_SCHEDULE": "* * * * * *",  # a tick a second
               "CLOUDLET_LOG_LEVEL": "debug", "CLOUDLET_LOG_JSON": "true", "PYTHONUNBUFFERED": "1",
               "CLOUDLET_SHIELD_TABLE": self.runtime.settings.shield_table}  # removed with the runtime
        for name in ("CLOUDLET_REDIS_URL", "CLOUDLET_WORKER_ID", "CLOUDLET_WORKER_DATABASE_URL"):
            env.pop(name, None)
        return env

    def start(self, name: str, *args: str) -> Process:
        log = self.tmp_path / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen([CLOUDLET, *args], env=self.env(), stdout=out, stderr=subprocess.STDOUT)
        process = Process(popen, log)
        self.started.append(process)
        return process

    def serve(self, *args: str) -> tuple[Process, str]:
        """`cloudlet serve` on a free port, once it answers /health/ready; returns it and its base URL."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        process = self.start("serve", "serve", "--port", str(port), *args)
        url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            if process.popen.poll() is not None:
                pytest.fail(f"server exited:\n{process.log.read_text()}")
            try:
                return httpx.get(f"{url}/health/ready", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(ready, "the server to answer", seconds=60)  # two cores shared with guests: be patient
        return process, url


@pytest.fixture
def cluster(runtime: Runtime, database_url: str, tmp_path: Path) -> Iterator[Cluster]:
    """Processes on the test's database, all stopped after the test."""
    made = Cluster(runtime, database_url, tmp_path, [])
    try:
        yield made
    finally:
        for process in made.started:
            process.stop()


def renewals(url: str, token: str) -> list[dict[str, Any]]:
    """The renewal entries of the token's wallet, read from a running server."""
    reply = httpx.get(f"{url}/api/wallet/transactions", headers={"Authorization": f"Bearer {token}"},
                      params={"limit": 200}, timeout=5)
    assert reply.status_code == 200, reply.text
    return [e for e in reply.json()["data"] if e["kind"] == "renewal"]


def due_subscription(runtime: Runtime) -> str:
    """A funded user whose monthly subscription is due for one renewal; returns a wallet:read token."""
    person = make_user(runtime, "due@example.com")
    fund(runtime, person, 10_000)
    subscribe(runtime, person, cycle="monthly", started_ago=timedelta(days=40), ref="inst-due")
    return mint_token(runtime, person, "wallet:read")


def test_serve_runs_the_worker_and_stops_cleanly(cluster: Cluster) -> None:
    token = due_subscription(cluster.runtime)
    server, url = cluster.serve()
    renewed = wait_for(lambda: renewals(url, token), "the renewal in the ledger")
    assert len(renewed) == 1 and renewed[0]["amount_cents"] == -3000
    assert server.stop() in STOPPED
    assert "Application shutdown complete" in server.log.read_text()
    events = [e["event"] for e in server.events()]
    assert events.count("worker started") == 1 and events.count("worker stopped") == 1
    assert "Traceback" not in server.log.read_text()


def test_executors_in_several_processes_run_each_tick_once(cluster: Cluster) -> None:
    token = due_subscription(cluster.runtime)
    server, url = cluster.serve("--workers", "2")  # two API processes, each with its own worker
    worker = cluster.start("worker", "worker")  # and a third executor on its own

    def started() -> list[dict[str, Any]]:
        return [e for p in (server, worker) for e in p.events() if e["event"] == "worker started"]

    # every executor up before anything is counted (and before SIGTERM, which finds no handler earlier)
    wait_for(lambda: len(started()) == 3, "the three executors to start", seconds=90)
    wait_for(lambda: renewals(url, token), "the renewal in the ledger")

    def ticks() -> Counter[str]:
        runs = [e for p in (server, worker) for e in p.events() if e["event"] == "billing run"]
        return Counter(e["scheduled_at"] for e in runs)

    wait_for(lambda: len(ticks()) >= 4, "four billing ticks")
    assert len(renewals(url, token)) == 1
    assert worker.stop() == 0, worker.log.read_text()
    assert server.stop() in STOPPED, server.log.read_text()
    assert len({e["executor_id"] for e in started()}) == 3  # every executor has an id of its own
    assert sum(e["event"] == "worker stopped" for p in (server, worker) for e in p.events()) == 3
    assert max(ticks().values()) == 1  # however many executors saw a tick, one of them ran it


def test_serve_without_the_worker_leaves_billing_alone(cluster: Cluster) -> None:
    token = due_subscription(cluster.runtime)
    server, url = cluster.serve("--no-worker")
    time.sleep(3)  # three ticks' worth of time, had a worker been running
    assert renewals(url, token) == []
    assert server.stop() in STOPPED
    assert not [e for e in server.events() if e["event"] == "worker started"]
