"""Load a real `cloudlet serve` process with authenticated GET /api/me and print req/s, p50 and p99,
beside a bare FastAPI app's trivial endpoint loaded the same way in the same run, and their ratio.

Run: `python -m bench.api_me [--duration 10] [--clients 1,8,32] [--db sqlite,postgresql] [--workers 1,2]`.

The baseline (`bare_app`) is FastAPI with one async GET that returns a small JSON object, served by
uvicorn with the options `cloudlet serve` uses (same worker count, no access log, no proxy headers,
no server header); it is measured just before each Cloudlet run, so both see the same machine.

For each database (SQLite in a temporary data directory; PostgreSQL in a fresh database created on
CLOUDLET_BENCH_POSTGRES_URL, default postgresql+psycopg://postgres@127.0.0.1:5432/test, and dropped
afterwards) and each worker count, it starts the server on a free port of 127.0.0.1, makes a user and
an API token with limits high enough never to refuse, and drives the endpoint with wrk (Debian's
`wrk`, which costs the 2-core machine little CPU) or, without wrk, an asyncio + httpx generator.
Every request authenticates a token (from the one-second credential cache after its first use),
counts it against the rate limiter, and leaves a usage-log line that the request log's writer
commits in batches within a second, as production does. Nothing but 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from fastapi import FastAPI
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from cloudlet.app import build_runtime
from cloudlet.auth import service as auth
from cloudlet.config import Settings
from cloudlet.kit import migrate
from cloudlet.tokens import service as tokens
from cloudlet.tokens.schemas import TokenCreate
from cloudlet.worker import SYSTEM_DATABASE_SUFFIX

POSTGRES_URL = os.environ.get("CLOUDLET_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
SECRET_KEY = "bench-secret-key-with-enough-length-0123456789"
PREFERRED_PATH = "/api/me"
FALLBACK_PATH = "/api/v1/test"  # authenticated and cheap; used only while /api/me is not built
UNLIMITED = 1_000_000_000
BARE_PATH = "/bare"
ROOT = Path(__file__).resolve().parent.parent  # where `bench` is importable from


@dataclass
class Result:
    """The figures of one load run."""

    clients: int
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        """Requests answered per second."""
        return self.requests / self.seconds if self.seconds else 0.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def postgres_database() -> Iterator[str | None]:
    """A fresh PostgreSQL database for one run, or None when none answers; dropped afterwards, with the system
    database a worker on it makes beside it."""
    name = f"cloudlet_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        print(f"  postgresql skipped: {POSTGRES_URL} does not answer ({type(exc).__name__})")
        admin.dispose()
        yield None
        return
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            for database in (name, f"{name}{SYSTEM_DATABASE_SUFFIX}"):
                conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()


def server_env(data_dir: Path, database_url: str | None) -> dict[str, str]:
    """The server's environment: ours, without any CLOUDLET_* setting of the calling shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDLET_")}
    env.update({"CLOUDLET_DATA_DIR": str(data_dir), "CLOUDLET_SECRET_KEY": SECRET_KEY,
                "CLOUDLET_LOG_LEVEL": "warning", "CLOUDLET_EDGE_SERVE": "false"})  # no nginx on ports 80 and 443
    if database_url:
        env["CLOUDLET_DATABASE_URL"] = database_url
    return env


def prepare(data_dir: Path, database_url: str | None) -> str:
    """Migrate the database and make a user with a `*` token that no rate limit will stop."""
    settings = Settings(_env_file=None, data_dir=data_dir, database_url=database_url,
                        secret_key=SECRET_KEY, argon2_time_cost=1, argon2_memory_kib=1024)
    runtime = build_runtime(settings)
    try:
        migrate.upgrade(runtime.db.engine)
        with runtime.db.session() as session:
            user = auth.create_user(session, settings, email="bench@example.com", password="bench-password-123")
            minted = tokens.mint(session, user_id=user.id, project_id=None, data=TokenCreate(name="bench"),
                                 caller_abilities=["*"], default_per_minute=UNLIMITED, default_per_hour=UNLIMITED)
        return minted.plaintext
    finally:
        runtime.mailer.close()
        runtime.db.dispose()


def cloudlet_command() -> list[str]:
    """How to start `cloudlet serve` with this interpreter's installation."""
    script = Path(sys.executable).parent / "cloudlet"
    return [str(script)] if script.exists() else [sys.executable, "-m", "cloudlet.cli.main"]


def bare_app() -> FastAPI:
    """The baseline: FastAPI with one trivial GET endpoint and nothing else (uvicorn's factory)."""
    app = FastAPI()

    @app.get(BARE_PATH)
    async def bare() -> dict[str, str]:
        return {"status": "ok"}

    return app


@contextmanager
def server(data_dir: Path, database_url: str | None, workers: int) -> Iterator[str]:
    """A running `cloudlet serve` on a free port; yields its base URL and stops it afterwards."""
    port = free_port()
    command = [*cloudlet_command(), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    with served(command, server_env(data_dir, database_url), data_dir / f"server-{workers}.log", port,
                "/health") as base:
        yield base


@contextmanager
def bare_server(data_dir: Path, workers: int) -> Iterator[str]:
    """The bare FastAPI app under uvicorn with `cloudlet serve`'s options; yields its base URL."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "bench.api_me:bare_app", "--factory", "--app-dir", str(ROOT),
               "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), "--log-level", "warning",
               "--no-access-log", "--no-proxy-headers", "--no-server-header"]
    with served(command, server_env(data_dir, None), data_dir / f"bare-{workers}.log", port, BARE_PATH) as base:
        yield base


@contextmanager
def served(command: list[str], env: dict[str, str], log_path: Path, port: int, probe: str) -> Iterator[str]:
    """Run a server command until the block ends; yields its base URL once `probe` answers 200."""
    log = log_path.open("w")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180  # a loaded machine starts two workers slowly
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited with {process.returncode}; see {log.name}")
            try:
                if httpx.get(f"{base}{probe}", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not answer {probe} within 180 s")
            time.sleep(0.2)
        yield base
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)  # the group holds only this server and its workers
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()


def pick_path(base: str, token: str) -> str:
    """/api/me when the server has it, else the CyberPanel key test (said so in the output)."""
    paths = httpx.get(f"{base}/openapi.json", timeout=10).json().get("paths", {})
    path = PREFERRED_PATH if "get" in paths.get(PREFERRED_PATH, {}) else FALLBACK_PATH
    reply = httpx.get(f"{base}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    if reply.status_code != 200:
        raise RuntimeError(f"GET {path} answered {reply.status_code}: {reply.text[:200]}")
    return path


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(value: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value.strip())
    if not match:
        raise ValueError(f"unexpected wrk latency {value!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def run_wrk(url: str, token: str, clients: int, seconds: int) -> Result:
    """Drive url with wrk; its latency distribution gives p50 and p99."""
    threads = 1 if clients < 8 else 2
    output = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{clients}", f"-d{seconds}s", "--latency", "--timeout", "10s",
         "-H", f"Authorization: Bearer {token}", url],
        capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", output, re.MULTILINE))
    total = re.search(r"^\s+(\d+) requests in ([\d.]+)(s|m)", output, re.MULTILINE)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    failures = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if not total or "50" not in percentiles or "99" not in percentiles:
        raise RuntimeError(f"could not read wrk's output:\n{output}")
    elapsed = float(total.group(2)) * (60 if total.group(3) == "m" else 1)
    errors = int(bad.group(1)) if bad else 0
    errors += sum(int(n) for n in failures.groups()) if failures else 0
    return Result(clients, int(total.group(1)), errors, elapsed, _ms(percentiles["50"]), _ms(percentiles["99"]))


def run_httpx(url: str, token: str, clients: int, seconds: int) -> Result:
    """Drive url with `clients` asyncio tasks over one httpx client (this process shares the CPU)."""

    async def drive() -> Result:
        latencies: list[float] = []
        errors = 0
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, limits=limits,
                                     timeout=10) as client:
            stop = time.perf_counter() + seconds

            async def one_client() -> None:
                nonlocal errors
                while time.perf_counter() < stop:
                    started = time.perf_counter()
                    try:
                        reply = await client.get(url)
                        ok = reply.status_code == 200
                    except httpx.HTTPError:
                        ok = False
                    latencies.append((time.perf_counter() - started) * 1000)
                    errors += not ok

            began = time.perf_counter()
            await asyncio.gather(*(one_client() for _ in range(clients)))
            elapsed = time.perf_counter() - began
        latencies.sort()
        return Result(clients, len(latencies), errors, elapsed, statistics.median(latencies),
                      latencies[max(0, int(len(latencies) * 0.99) - 1)])

    return asyncio.run(drive())


def bench_one(label: str, database_url: str | None, workers_list: list[int], clients_list: list[int],
              seconds: int) -> None:
    """All runs on one database: each worker count, each client count, each beside the bare baseline."""
    drive = run_wrk if shutil.which("wrk") else run_httpx
    generator = "wrk" if shutil.which("wrk") else "httpx (wrk not installed; shares the CPU)"
    with tempfile.TemporaryDirectory(prefix="cloudlet-bench-") as tmp:
        data_dir = Path(tmp)
        token = prepare(data_dir, database_url)
        for workers in workers_list:
            baseline: dict[int, Result] = {}
            with bare_server(data_dir, workers) as base:
                drive(f"{base}{BARE_PATH}", token, 4, 2)
                for clients in clients_list:
                    baseline[clients] = drive(f"{base}{BARE_PATH}", token, clients, seconds)
            with server(data_dir, database_url, workers) as base:
                path = pick_path(base, token)
                note = "" if path == PREFERRED_PATH else f"  ({PREFERRED_PATH} is not built yet: using {path})"
                print(f"  {label}, {workers} worker{'s' if workers > 1 else ''}: GET {path} with {generator}{note}")
                drive(f"{base}{path}", token, 4, 2)  # warm up connections, caches and the pool
                for clients in clients_list:
                    result = drive(f"{base}{path}", token, clients, seconds)
                    bare = baseline[clients]
                    print(f"    {clients:>3} clients  {result.rate:8.0f} req/s   p50 {result.p50_ms:7.2f} ms   "
                          f"p99 {result.p99_ms:7.2f} ms   {result.requests} requests, {result.errors} errors",
                          flush=True)
                    ratio = result.rate / bare.rate if bare.rate else 0.0
                    print(f"        bare  {bare.rate:8.0f} req/s   p50 {bare.p50_ms:7.2f} ms   "
                          f"p99 {bare.p99_ms:7.2f} ms   {bare.errors} errors   -> {PREFERRED_PATH} at "
                          f"{ratio:.1%} of bare", flush=True)


def main(argv: list[str] | None = None) -> None:
    """Parse the options and run every combination."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=int, default=10, help="seconds per run")
    parser.add_argument("--clients", default="1,8,32", help="concurrent clients, comma-separated")
    parser.add_argument("--db", default="sqlite,postgresql", help="sqlite and/or postgresql")
    parser.add_argument("--workers", default="1,2", help="server worker processes, comma-separated")
    args = parser.parse_args(argv)
    clients = [int(c) for c in args.clients.split(",")]
    workers = [int(w) for w in args.workers.split(",")]
    load = ", ".join(f"{n:.1f}" for n in os.getloadavg())
    print(f"API: authenticated GET {PREFERRED_PATH}, {args.duration} s per run, on 127.0.0.1 "
          f"({os.cpu_count()} cores; load average before the runs: {load})")
    for db in args.db.split(","):
        if db == "sqlite":
            bench_one("sqlite", None, workers, clients, args.duration)
        elif db == "postgresql":
            with postgres_database() as url:
                if url is not None:
                    bench_one("postgresql", url, workers, clients, args.duration)
        else:
            parser.error(f"unknown database {db!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
