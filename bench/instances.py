"""Time server creation with real guests: create-to-running p50/p95 beside a bare QEMU boot of the same image.

Run: `python -m bench.instances [--runs 5] [--rounds 2] [--concurrency 1,8] [--db sqlite,postgresql]`.

It starts a real `cloudlet serve` (with its embedded worker) on a free port of 127.0.0.1 with a temporary
data directory, registers this machine's libvirtd (qemu:///system) as a node through the API, builds the
tiny image, imports it into the node's pool under a unique name (`cloudlet images import`) and points the
default template at it, bootstraps an administrator, credits the wallet and mints a token. Then, for each
concurrency N, it sends N POST /api/instances at once and times each from the moment its POST is sent to the
first poll (every 50 ms) that lists it as running; the create action's tasks (/api/instances/{id}/actions)
show where the time went. In the same run, interleaved with those rounds, it boots the same image bare:
`qemu-system-x86_64 -accel tcg` on a qcow2 overlay with an equivalent NoCloud seed, timed from process start
to the guest's CLOUDLET_READY line, N at a time; and it builds the same guests straight through the libvirt
driver (define, seed, start, wait for the ready line, as the workflow's tasks do, without the API, the
database or DBOS). Overhead = create p50 - bare p50 (the aim is 0.5 s); control plane = create p50 -
driver p50, the part that is Cloudlet's own rather than libvirt's. The server's CPU time per create is
shown too: on a small machine every CPU second the control plane spends is taken from the booting guests.

Everything it makes (instances, the image volume, temporary files, the server, a PostgreSQL database) is
removed at the end, also after a failure. Guest traffic stays on the isolated bridge; nothing but
127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.api_me import cloudlet_command, free_port, postgres_database
from cloudlet.drivers.base import GuestNetwork, GuestSpec
from cloudlet.drivers.seed import build_seed_iso, parse_ready, seed_for
from cloudlet.images.build import build_tiny

SECRET_KEY = "bench-secret-key-with-enough-length-0123456789"
ADMIN_EMAIL = "bench-admin@example.com"
ADMIN_PASSWORD = "bench-password-123456"
PLAN = "scout-1"
TEMPLATE = "debian-12-tiny"
REGION = "dc1"
POLL_SECONDS = 0.05
WALLET_CENTS = 10_000_000
UNLIMITED_PER_MINUTE = 100_000  # the largest per-token limits the API accepts: polling must never meet a 429
UNLIMITED_PER_HOUR = 10_000_000
DEFAULT_CACHE = Path("/var/lib/cloudlet/cache")  # where `cloudlet images build` keeps the Debian packages


# --- figures -------------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), linearly interpolated between the two nearest samples."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _when(stamp: str | None) -> float | None:
    return None if stamp is None else datetime.fromisoformat(stamp).timestamp()


@dataclass
class Created:
    """One server of a round: when its POST went out and came back, when it was first seen running."""

    sent_wall: float  # time.time(), to compare with the server's timestamps (same machine)
    sent: float  # time.monotonic()
    answered: float = 0.0
    instance_id: str = ""
    action_id: int = 0
    running_at: float | None = None
    error: str | None = None
    action: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        """Create-to-running, as the client saw it."""
        return (self.running_at or self.sent) - self.sent

    def phases(self) -> dict[str, float]:
        """Seconds spent in each phase of the create action, from its own timestamps (and the POST's)."""
        tasks = [t for t in self.action.get("tasks", []) if t["started_at"] and t["finished_at"]]
        started = _when(self.action.get("started_at"))
        finished = _when(self.action.get("finished_at"))
        if not tasks or started is None or finished is None:
            return {}
        found = {"POST answered": self.answered - self.sent}
        first = _when(tasks[0]["started_at"]) or started
        found["queued: action start -> first task"] = first - started
        gaps = 0.0
        previous: float | None = None
        for task in tasks:
            begin, end = _when(task["started_at"]) or 0.0, _when(task["finished_at"]) or 0.0
            found[task["name"]] = end - begin
            if previous is not None:
                gaps += begin - previous
            previous = end
        found["between tasks (workflow steps)"] = gaps
        found["last task -> action finished"] = finished - (previous or finished)
        found["action finished -> seen running"] = self.sent_wall + self.seconds - finished
        found["action (started -> finished)"] = finished - started
        boot_from = next((t for t in tasks if t["name"] == "start_vm"), None)
        boot_to = next((t for t in tasks if t["name"] == "wait_for_guest_agent"), None)
        if boot_from and boot_to:
            found["guest boot (start_vm start -> ready)"] = ((_when(boot_to["finished_at"]) or 0.0)
                                                             - (_when(boot_from["started_at"]) or 0.0))
        return found


@dataclass
class Figures:
    """Everything measured at one concurrency."""

    concurrency: int
    created: list[Created] = field(default_factory=list)
    bare: list[float] = field(default_factory=list)
    driver: list[float] = field(default_factory=list)
    server_cpu_seconds: float = 0.0  # CPU the server process used during the create rounds
    rounds_left_out: int = 0  # create rounds in which a build failed
    failures: list[str] = field(default_factory=list)

    @property
    def running(self) -> list[float]:
        """Create-to-running of the servers that got there."""
        return [c.seconds for c in self.created if c.error is None and c.running_at is not None]


# --- the server and its set-up -------------------------------------------------------------------------


def server_env(data_dir: Path, database_url: str | None) -> dict[str, str]:
    """The server's (and the operator commands') environment, without the calling shell's CLOUDLET_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDLET_")}
    env.update({"CLOUDLET_DATA_DIR": str(data_dir), "CLOUDLET_SECRET_KEY": SECRET_KEY,
                "CLOUDLET_LOG_LEVEL": "warning", "CLOUDLET_ARGON2_TIME_COST": "1",
                "CLOUDLET_ARGON2_MEMORY_KIB": "8192",
                # the administrator's session polls the node too; no rate limit may stop the benchmark
                "CLOUDLET_TOKEN_RATE_PER_MINUTE": str(UNLIMITED_PER_MINUTE),
                "CLOUDLET_TOKEN_RATE_PER_HOUR": str(UNLIMITED_PER_HOUR),
                "CLOUDLET_EDGE_SERVE": "false"})  # no nginx on ports 80 and 443 (bench/waf.py runs one elsewhere)
    if database_url:
        env["CLOUDLET_DATABASE_URL"] = database_url
    return env


@dataclass(frozen=True)
class Server:
    """A running server: its base URL and its process group."""

    base: str
    pgid: int

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server's processes have used so far."""
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) == self.pgid:  # pgrp; utime and stime follow at 11 and 12
                    total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")


@contextmanager
def server(data_dir: Path, env: dict[str, str]) -> Iterator[Server]:
    """A running `cloudlet serve` (one process with its worker) on a free port."""
    port = free_port()
    log_path = data_dir.parent / "server.log"
    log = log_path.open("w")
    process = subprocess.Popen([*cloudlet_command(), "serve", "--host", "127.0.0.1", "--port", str(port)],
                               env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/health/ready", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not answer /health/ready within 60 s")
            time.sleep(0.2)
        yield Server(base, process.pid)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)  # the group holds only this server
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()


def _ok(answer: httpx.Response, doing: str) -> dict[str, Any]:
    if not answer.is_success:
        raise RuntimeError(f"{doing}: HTTP {answer.status_code} {answer.text[:500]}")
    return dict(answer.json()) if answer.content and isinstance(answer.json(), dict) else {}


def operator(env: dict[str, str], *args: str) -> str:
    """Run a `cloudlet` operator command against the server's data directory and database."""
    done = subprocess.run([*cloudlet_command(), *args], env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"cloudlet {' '.join(args)} failed: {done.stdout}{done.stderr}")
    return done.stdout


@dataclass
class Order:
    """What every POST /api/instances of the run needs, and what was made to get it."""

    token: str
    project_id: int
    package_id: int
    category: str
    template_id: int
    node_id: int


def set_up(base: str, env: dict[str, str], image_name: str, image_file: Path, guests: int) -> Order:
    """Admin, node, image, template, wallet and token: a server that can build `guests` servers at once."""
    pair = _ok(httpx.post(f"{base}/v1/auth/bootstrap", timeout=30,
                          json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "name": "Bench"}), "bootstrap")
    admin = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {pair['access_token']}"}, timeout=30)
    with admin:
        plan = _plan(admin)
        # exactly the room of `guests` servers of the plan, so placement is real but never refuses
        capacity = {"vcpu": plan["vcpu"] * guests, "memory_mib": plan["ram_mb"] * guests,
                    "disk_gib": plan["disk_gb"] * guests}
        node = _ok(admin.post("/v1/nodes", json={"name": "bench-node", "uri": "qemu:///system", "region": REGION,
                                                  "capacity": capacity,
                                                  "overcommit": {"cpu": 1, "memory": 1, "disk": 1}}), "adding the node")
        imported = operator(env, "images", "import", image_name, str(image_file))
        found = re.search(r"registered as image (\d+)", imported)
        if found is None:
            raise RuntimeError(f"`cloudlet images import` did not register the image: {imported}")
        templates = _ok(admin.get("/v1/admin/os-templates"), "listing templates")["os_templates"]
        template = next(t for t in templates if t["code"] == TEMPLATE)
        _ok(admin.put(f"/v1/admin/os-templates/{template['id']}", json={"image_id": int(found.group(1))}),
            "pointing the template at the image")
        operator(env, "wallet", "credit", ADMIN_EMAIL, str(WALLET_CENTS), "--reason", "bench")
        token = _ok(admin.post("/api/me/api-tokens", json={
            "name": "bench", "abilities": ["*"], "rate_limit_per_minute": UNLIMITED_PER_MINUTE,
            "rate_limit_per_hour": UNLIMITED_PER_HOUR}), "minting a token")["token"]
        project_id = int(_ok(admin.get("/api/me"), "reading /api/me")["projects"][0]["id"])
        _wait_node_ready(admin, int(node["id"]))
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        package = _package(client)
        template_id = _template(client, int(package["id"]))
    return Order(token, project_id, int(package["id"]), str(package["category"]), template_id, int(node["id"]))


def _plan(admin: httpx.Client) -> dict[str, Any]:
    plans = _ok(admin.get("/v1/admin/plans"), "listing plans")["plans"]
    found = next((p for p in plans if p.get("code") == PLAN), None)
    if found is None:
        raise RuntimeError(f"the default catalogue has no plan {PLAN!r}")
    return dict(found)


def _package(client: httpx.Client) -> dict[str, Any]:
    for category in _ok(client.get("/api/catalog/plans"), "reading the catalogue")["categories"]:
        for package in category["packages"]:
            if package["plan"] == PLAN:
                return dict(package)
    raise RuntimeError(f"plan {PLAN!r} is not on sale")


def _template(client: httpx.Client, package_id: int) -> int:
    answer = client.get(f"/api/catalog/os-templates/{package_id}")
    if not answer.is_success:
        raise RuntimeError(f"reading the templates: HTTP {answer.status_code} {answer.text[:300]}")
    for group in answer.json():
        for template in group["templates"]:
            if template["code"] == TEMPLATE:
                return int(template["id"])
    raise RuntimeError(f"template {TEMPLATE!r} is not offered with {PLAN}")


def _wait_node_ready(admin: httpx.Client, node_id: int, timeout: float = 60.0) -> str | None:
    """Wait until the node takes guests; why it did not at first (None when it was ready at once)."""
    deadline = time.monotonic() + timeout
    first: str | None = None
    while True:
        node = _ok(admin.get(f"/v1/nodes/{node_id}"), "reading the node")
        if node["status"] == "ready":
            return first
        first = first or f"{node['status']}: {node['status_reason']}"
        if time.monotonic() > deadline:
            raise RuntimeError(f"the node is still {node['status']} after {timeout:.0f} s: {node['status_reason']}")
        time.sleep(1)


# --- creating through the API ---------------------------------------------------------------------------


class Tracker:
    """The ids of every server this run made, so each one is deleted even after a failure."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.lock = threading.Lock()

    def add(self, instance_id: str) -> None:
        """Remember a server to delete."""
        with self.lock:
            self.ids.append(instance_id)


def create_round(base: str, order: Order, concurrency: int, label: str, tracker: Tracker,
                 timeout: float, poll: float = POLL_SECONDS) -> list[Created]:
    """Send `concurrency` creates at once and time each to its first listing as running."""
    created = [Created(0.0, 0.0) for _ in range(concurrency)]
    barrier = threading.Barrier(concurrency)
    headers = {"Authorization": f"Bearer {order.token}"}

    def one(index: int) -> None:
        body = {"name": f"bench-{label}-{index}", "hostname": f"bench-{label}-{index}.example.com",
                "project_id": order.project_id, "package_id": order.package_id, "category": order.category,
                "os_template_id": order.template_id, "os_name": TEMPLATE, "billing_cycle": "monthly",
                "ssh_key_ids": []}
        with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
            barrier.wait(timeout=30)
            item = created[index]
            item.sent_wall, item.sent = time.time(), time.monotonic()
            try:
                answer = client.post("/api/instances", json=body)
            except httpx.HTTPError as error:
                item.error = f"POST failed: {error}"
                return
            item.answered = time.monotonic()
            if answer.status_code != 201:
                item.error = f"POST answered {answer.status_code}: {answer.text[:300]}"
                return
            reply = answer.json()
            item.instance_id, item.action_id = reply["id"], int(reply["action_id"])
            tracker.add(item.instance_id)

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        deadline = time.monotonic() + timeout
        # one list request per tick for the whole round: GET /api/instances/{id} asks libvirt for live stats
        # (and samples CPU for a while), which would load the machine being measured
        while any(c.running_at is None and c.error is None for c in created):
            if time.monotonic() > deadline:
                for item in created:
                    if item.running_at is None and item.error is None:
                        item.error = f"not running within {timeout:.0f} s"
                break
            time.sleep(poll)
            listed = client.get("/api/instances", params={"project_id": order.project_id})
            seen = time.monotonic()
            if listed.status_code != 200:
                continue
            statuses = {i["id"]: i["status"] for i in listed.json()}
            for item in created:
                if not item.instance_id or item.running_at is not None or item.error is not None:
                    continue
                status = statuses.get(item.instance_id)
                if status == "running":
                    item.running_at = seen
                elif status == "error":
                    item.error = "the build failed"
        for thread in threads:
            thread.join(timeout=60)
        for item in created:
            if item.instance_id:
                item.action = _ok(client.get(f"/api/instances/{item.instance_id}/actions/{item.action_id}"),
                                  "reading the create action")
                if item.error == "the build failed":
                    failed = [t["name"] for t in item.action.get("tasks", []) if t["status"] == "failed"]
                    item.error = f"the build failed in {', '.join(failed) or '?'}: {item.action.get('error')}"
    return created


def delete_all(base: str, token: str, instance_ids: list[str], timeout: float = 180.0) -> list[str]:
    """Delete these servers at once and wait until each answers 404; the ids still there after timeout."""
    pending = list(instance_ids)
    if not pending:
        return []
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
        for instance_id in pending:
            for _attempt in range(30):  # a server still building is locked (409) until its action ends
                answer = client.request("DELETE", f"/api/instances/{instance_id}", json={"mode": "immediate"})
                if answer.status_code != 409:
                    break
                time.sleep(2)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            pending = [i for i in pending if client.get(f"/api/instances/{i}").status_code != 404]
            if pending:
                time.sleep(0.5)
    return pending


def guest_name(instance_id: str) -> str:
    """The name the node knows a server by (how instances.service names it); only for the last-resort cleanup."""
    return f"i{instance_id.replace('-', '')[:15]}"


# --- the bare boot --------------------------------------------------------------------------------------


def bare_round(image: Path, work: Path, concurrency: int, label: str, timeout: float) -> tuple[list[float], list[str]]:
    """Boot `concurrency` bare QEMU guests of image at once; seconds from process start to CLOUDLET_READY."""
    work.mkdir(parents=True, exist_ok=True)
    commands = []
    for index in range(concurrency):
        name = f"bench-bare-{label}-{index}"
        # the same seed the control plane writes for a scout-1 server: hostname, password, static address
        spec = GuestSpec(name=name, image="bench", vcpus=1, memory_mib=1024, disk_gib=25,
                         hostname=f"{name}.example.com", root_password=uuid.uuid4().hex,
                         network=GuestNetwork(address=f"203.0.113.{200 + index}/24", gateway="203.0.113.1"))
        seed = build_seed_iso(seed_for(spec), work / f"{name}-seed.iso")
        disk = work / f"{name}.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(image), str(disk),
                        f"{spec.disk_gib}G"], check=True, capture_output=True, timeout=60)
        commands.append(["qemu-system-x86_64", "-machine", "pc", "-accel", "tcg", "-m", str(spec.memory_mib),
                         "-smp", str(spec.vcpus), "-nographic", "-nic", "none", "-no-reboot",
                         "-drive", f"file={disk},if=virtio,format=qcow2",
                         "-drive", f"file={seed},if=virtio,format=raw,readonly=on"])
    ready: list[float | None] = [None] * concurrency
    processes: list[subprocess.Popen[bytes]] = []

    gave_up: dict[int, str] = {}

    def watch(index: int, process: subprocess.Popen[bytes], started: float) -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.decode(errors="replace").strip()
            if parse_ready(line) is not None:
                ready[index] = time.monotonic() - started
                return
            if line.startswith("CLOUDLET_NO_SEED"):  # the image gives up on its seed and will never be ready
                gave_up[index] = f"after {time.monotonic() - started:.1f} s: {line}"
                return

    try:
        watchers = []
        for index, command in enumerate(commands):
            started = time.monotonic()
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                       stderr=subprocess.DEVNULL)
            processes.append(process)
            watcher = threading.Thread(target=watch, args=(index, process, started), daemon=True)
            watcher.start()
            watchers.append(watcher)
        deadline = time.monotonic() + timeout
        for watcher in watchers:
            watcher.join(timeout=max(0.0, deadline - time.monotonic()))
    finally:
        for process in processes:
            process.kill()
        for process in processes:
            process.wait(timeout=30)
            if process.stdout is not None:
                process.stdout.close()
        for leftover in work.glob(f"bench-bare-{label}-*"):
            leftover.unlink(missing_ok=True)
    failures = [f"bare guest {i} not ready " + gave_up.get(i, f"within {timeout:.0f} s")
                for i, t in enumerate(ready) if t is None]
    return [t for t in ready if t is not None], failures


# --- the same guests straight through the libvirt driver --------------------------------------------------


def driver_round(image_name: str, concurrency: int, label: str, timeout: float) -> tuple[list[float], list[str]]:
    """Build `concurrency` guests at once through LibvirtDriver alone (no API, database or workflow): seconds
    from define_guest to the ready line, i.e. what the create's driver calls cost without the control plane."""
    from cloudlet.drivers.base import DriverError
    from cloudlet.drivers.libvirt.guest import LibvirtDriver

    suffix = uuid.uuid4().hex[:6]
    specs = [GuestSpec(name=f"bench-lv-{label}-{index}-{suffix}", image=image_name, vcpus=1, memory_mib=1024,
                       disk_gib=25, hostname=f"bench-lv-{index}.example.com", root_password=uuid.uuid4().hex,
                       network=GuestNetwork(address=f"203.0.113.{220 + index}/24", gateway="203.0.113.1"))
             for index in range(concurrency)]
    ready: list[float | None] = [None] * concurrency
    failures: list[str] = []
    barrier = threading.Barrier(concurrency)

    def one(index: int) -> None:
        driver = LibvirtDriver()
        try:
            barrier.wait(timeout=30)
            started = time.monotonic()
            driver.define_guest(specs[index])
            driver.write_seed(specs[index])
            driver.start(specs[index].name)
            driver.wait_ready(specs[index].name, timeout)
            ready[index] = time.monotonic() - started
        except (DriverError, threading.BrokenBarrierError) as error:
            failures.append(f"driver guest {index}: {type(error).__name__}: {str(error)[:300]}")
        finally:
            driver.close()

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(concurrency)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=timeout + 60)
    finally:
        # every guest runs until the round ends, as the API's servers do until they are deleted
        driver = LibvirtDriver()
        try:
            for spec in specs:
                driver.destroy_guest(spec.name)
        finally:
            driver.close()
    return [t for t in ready if t is not None], failures


# --- the run --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What to run: concurrencies, repeats, and the image (as a file and as a pool volume)."""

    concurrencies: list[int]
    runs: int  # repeats at concurrency 1
    rounds: int  # repeats at every other concurrency
    image_file: Path
    image_name: str
    work: Path
    timeout: float
    poll: float  # seconds between two listings while a round builds


def polling_cost(running: Server, order: Order, poll: float, seconds: float = 5.0) -> tuple[float, float]:
    """The idle server's CPU use (CPU seconds per second) and the CPU one poll of the instance list costs (s)."""
    before = running.cpu_seconds()
    time.sleep(seconds)
    idle = (running.cpu_seconds() - before) / seconds
    with httpx.Client(base_url=running.base, headers={"Authorization": f"Bearer {order.token}"}, timeout=30) as client:
        before, started, polls = running.cpu_seconds(), time.monotonic(), 0
        while time.monotonic() - started < seconds:
            client.get("/api/instances", params={"project_id": order.project_id})
            polls += 1
            time.sleep(poll)
        used = running.cpu_seconds() - before - idle * (time.monotonic() - started)
    return idle, max(0.0, used) / max(1, polls)


def measure(running: Server, order: Order, plan: Plan, tracker: Tracker) -> list[Figures]:
    """Alternate bare boots, driver builds and API creates at each concurrency, so all see the same machine."""
    base, timeout = running.base, plan.timeout
    idle, per_poll = polling_cost(running, order, plan.poll)
    print(f"    server CPU: {idle:.3f} s per second when idle (heartbeat, sweeps); one GET /api/instances costs "
          f"{per_poll * 1000:.1f} ms, so polling every {plan.poll * 1000:.0f} ms takes "
          f"{100 * per_poll / (plan.poll + per_poll):.0f}% of a core", flush=True)
    results = []
    for concurrency in plan.concurrencies:
        figures = Figures(concurrency)
        repeats = plan.runs if concurrency == 1 else plan.rounds
        for repeat in range(repeats):
            label = f"{concurrency}x{repeat}"
            bare, failures = bare_round(plan.image_file, plan.work, concurrency, label, timeout)
            figures.bare += bare
            figures.failures += failures
            direct, failures = driver_round(plan.image_name, concurrency, label, timeout)
            figures.driver += direct
            figures.failures += failures
            # the token of an administrator holding `*` is an admin credential
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {order.token}"}, timeout=30) as admin:
                was = _wait_node_ready(admin, order.node_id)
            if was is not None:
                print(f"    (waited for the node to be ready again; it was {was})", flush=True)
            cpu_before = running.cpu_seconds()
            round_ = create_round(base, order, concurrency, label, tracker, timeout, plan.poll)
            if any(c.error for c in round_):
                # fewer guests than N built at once: its times are not those of N concurrent creates
                figures.failures += [f"round {repeat + 1} left out: {c.error}" for c in round_ if c.error]
                figures.rounds_left_out += 1
            else:
                figures.server_cpu_seconds += running.cpu_seconds() - cpu_before
                figures.created += round_
            tracker.ids = left = delete_all(base, order.token, tracker.ids)
            if left:
                raise RuntimeError(f"servers still present after deletion: {left}")
            good = [c.seconds for c in round_ if c.error is None]
            print(f"    N={concurrency} round {repeat + 1}/{repeats}: bare " + _seconds(bare) + "; driver "
                  + _seconds(direct) + "; create-to-running " + _seconds(good)
                  + "".join(f"; FAILED: {c.error}" for c in round_ if c.error)
                  + f"  (load {os.getloadavg()[0]:.1f})", flush=True)
        results.append(figures)
    return results


def _seconds(values: list[float]) -> str:
    return ", ".join(f"{t:.2f}" for t in values) + " s"


def report(label: str, results: list[Figures]) -> None:
    """The summary table and, per concurrency, the mean time of each phase of the create action."""
    print(f"  {label}: seconds (p95 interpolated between samples). overhead = create - bare; "
          "control plane = create - driver")
    print(f"    {'N':>2}  {'samples':>7}  {'create p50':>10}  {'create p95':>10}  {'bare p50':>8}  {'bare p95':>8}"
          f"  {'overhead p50':>12}  {'driver p50':>10}  {'control plane p50':>17}  {'server CPU/create':>17}")
    for fig in results:
        create, bare, direct = fig.running, fig.bare, fig.driver
        overhead = percentile(create, 50) - percentile(bare, 50)
        own = percentile(create, 50) - percentile(direct, 50)
        cpu = fig.server_cpu_seconds / max(1, len(fig.created))
        print(f"    {fig.concurrency:>2}  {len(create):>7}  {percentile(create, 50):10.2f}  "
              f"{percentile(create, 95):10.2f}  {percentile(bare, 50):8.2f}  {percentile(bare, 95):8.2f}  "
              f"{overhead:12.2f}  {percentile(direct, 50):10.2f}  {own:17.2f}  {cpu:17.2f}")
    for fig in results:
        phases = [p for p in (c.phases() for c in fig.created) if p]
        if phases:
            print(f"  {label}, N={fig.concurrency}: where a create's time goes (mean of {len(phases)} servers)")
            for name in phases[0]:
                values = [p[name] for p in phases if name in p]
                print(f"    {name:<40} {statistics.fmean(values):7.3f}   (max {max(values):.3f})")
        if fig.rounds_left_out:
            print(f"  {label}, N={fig.concurrency}: {fig.rounds_left_out} create round(s) left out of the figures "
                  "because a build failed (fewer than N guests built at once)")
        for failure in fig.failures:
            print(f"    failure: {failure}")


def bench_one(label: str, database_url: str | None, args: argparse.Namespace) -> None:
    """One server on one database: set up, measure, report; everything removed afterwards."""
    image_name = f"bench-{uuid.uuid4().hex[:8]}"
    tracker = Tracker()
    with tempfile.TemporaryDirectory(prefix="cloudlet-bench-instances-") as tmp:
        root = Path(tmp)
        data_dir = root / "data"
        data_dir.mkdir()
        env = server_env(data_dir, database_url)
        image = build_tiny(args.cache_dir, root / "tiny.qcow2")
        try:
            with server(data_dir, env) as running:
                order: Order | None = None
                try:
                    order = set_up(running.base, env, image_name, image, max(args.concurrency))
                    print(f"  {label}: server at {running.base}, image {image_name} in the pool, node ready",
                          flush=True)
                    plan = Plan(args.concurrency, args.runs, args.rounds, image, image_name, root / "bare",
                                args.timeout, args.poll)
                    results = measure(running, order, plan, tracker)
                finally:
                    if order is not None and tracker.ids:
                        try:
                            tracker.ids = delete_all(running.base, order.token, tracker.ids)
                        except httpx.HTTPError as error:
                            print(f"  the API could not delete {tracker.ids}: {error}")
        finally:
            _remove_from_node(tracker.ids, image_name)
    report(label, results)


def _remove_from_node(instance_ids: list[str], image_name: str) -> None:
    """What the API could not delete is removed from libvirt directly; then the imported image volume."""
    from cloudlet.drivers.libvirt.guest import LibvirtDriver  # only the benchmark that needs libvirt loads it

    driver = LibvirtDriver()
    try:
        for instance_id in instance_ids:
            print(f"  removing guest {guest_name(instance_id)} directly (the API did not delete it)")
            driver.destroy_guest(guest_name(instance_id))
        driver.delete_image(image_name)
    finally:
        driver.close()


def libvirt_missing() -> str | None:
    """Why this machine cannot run guests through libvirt, or None when it can."""
    from cloudlet.drivers.base import DriverError
    from cloudlet.drivers.libvirt.guest import LibvirtDriver

    try:
        LibvirtDriver().close()
    except (DriverError, ImportError) as error:
        return f"{type(error).__name__}: {error}"
    return None


def main(argv: list[str] | None = None) -> None:
    """Parse the options and run the benchmark on each database."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5, help="rounds at concurrency 1")
    parser.add_argument("--rounds", type=int, default=2, help="rounds at every other concurrency")
    parser.add_argument("--concurrency", default="1,8", help="concurrent creates, comma-separated")
    parser.add_argument("--db", default="sqlite", help="sqlite and/or postgresql, comma-separated")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds a round may take to be running")
    parser.add_argument("--poll", type=float, default=POLL_SECONDS, help="seconds between two polls of the list")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="Debian packages for the tiny image")
    args = parser.parse_args(argv)
    args.concurrency = [int(n) for n in args.concurrency.split(",")]
    missing = libvirt_missing()
    if missing is not None:
        print(f"Instances: skipped, libvirt is not ready here ({missing}); run `cloudlet node prepare`")
        return
    load = ", ".join(f"{n:.1f}" for n in os.getloadavg())
    print(f"Instances: create-to-running vs a bare qemu-system-x86_64 -accel tcg boot of the same image, plan {PLAN} "
          f"({os.cpu_count()} cores; load average before the runs: {load})", flush=True)
    for db in args.db.split(","):
        if db == "sqlite":
            bench_one("sqlite", None, args)
        elif db == "postgresql":
            with postgres_database() as url:
                if url is not None:
                    bench_one("postgresql", url, args)
        else:
            parser.error(f"unknown database {db!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
