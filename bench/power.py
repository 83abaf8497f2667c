"""Time each power action of a real guest to its new stable state: `python -m bench.power [--rounds 3]`.

One `cloudlet serve` (SQLite, embedded worker) on this machine's libvirt node builds one server from the
tiny image (set up as bench/instances.py does), then each round asks, through the primary surface,
shutdown, boot, restart and poweroff, and times each from the request to the first read that shows the
action finished and the instance in its stable state (stopped or running). Boot and restart include the
guest's boot until it prints its readiness line again; shutdown is the guest's own ACPI shutdown.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from bench.instances import (
    DEFAULT_CACHE,
    _ok,
    _remove_from_node,
    delete_all,
    libvirt_missing,
    percentile,
    server,
    server_env,
    set_up,
)
from cloudlet.images.build import build_tiny

ACTIONS = (("shutdown", "stopped"), ("boot", "running"), ("restart", "running"), ("poweroff", "stopped"),
           ("boot", "running"))
POLL_SECONDS = 0.1


def settle(client: httpx.Client, instance_id: str, wanted: str, timeout: float) -> float:
    """Seconds until the instance shows `wanted` with no action holding it."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        found = client.get("/api/instances").json()
        row = next(i for i in found if i["id"] == instance_id)
        if row["status"] == wanted and not row["locked"]:
            return time.monotonic() - started
        time.sleep(POLL_SECONDS)
    raise RuntimeError(f"the instance was not {wanted} within {timeout:.0f} s")


@contextmanager
def one_server(name: str, timeout: float, extra_env: dict[str, str] | None = None
               ) -> Iterator[tuple[httpx.Client, str]]:
    """One `cloudlet serve` (SQLite, embedded worker; extra_env adds to its environment) on this machine's libvirt
    node with one running server of the tiny image: a client of its owner and the server's id. Everything is
    removed after."""
    image_name = f"bench-{uuid.uuid4().hex[:8]}"
    ids: list[str] = []
    with tempfile.TemporaryDirectory(prefix=f"cloudlet-bench-{name}-") as tmp:
        root = Path(tmp)
        root.chmod(0o711)  # the edge's nginx workers (www-data) walk down to their files, when it runs
        (root / "data").mkdir()
        env = {**server_env(root / "data", None), **(extra_env or {})}
        image = build_tiny(DEFAULT_CACHE, root / "tiny.qcow2")
        try:
            with server(root / "data", env) as running:
                order = set_up(running.base, env, image_name, image, 1)
                headers = {"Authorization": f"Bearer {order.token}"}
                with httpx.Client(base_url=running.base, headers=headers, timeout=30) as client:
                    made = _ok(client.post("/api/instances", json={
                        "name": name, "hostname": f"{name}.example.com", "project_id": order.project_id,
                        "package_id": order.package_id, "category": order.category,
                        "os_template_id": order.template_id, "os_name": "tiny", "billing_cycle": "monthly"}),
                        "creating the server")
                    ids.append(made["id"])
                    settle(client, made["id"], "running", timeout)
                    yield client, made["id"]
                    ids = delete_all(running.base, order.token, ids)
        finally:
            _remove_from_node(ids, image_name)


def main(argv: list[str] | None = None) -> None:
    """Build one server and time its power actions."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of shutdown, boot, restart, poweroff, boot")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds one action may take")
    args = parser.parse_args(argv)
    missing = libvirt_missing()
    if missing is not None:
        print(f"Power: skipped, libvirt is not ready here ({missing})")
        return
    print(f"Power: each action to its stable state, one real TCG guest ({os.cpu_count()} cores; load average "
          f"{', '.join(f'{n:.1f}' for n in os.getloadavg())})", flush=True)
    times: dict[str, list[float]] = {}
    with one_server("power", args.timeout) as (client, instance_id):
        for _ in range(args.rounds):
            for action, wanted in ACTIONS:
                sent = time.monotonic()
                _ok(client.post(f"/api/instances/{instance_id}/power/{action}"), action)
                settle(client, instance_id, wanted, args.timeout)
                times.setdefault(action, []).append(time.monotonic() - sent)
    print("  action     samples   p50 s   p95 s   mean s")
    for action, values in times.items():
        print(f"  {action:<10} {len(values):>7} {statistics.median(values):>7.2f} {percentile(values, 95):>7.2f} "
              f"{statistics.fmean(values):>8.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
