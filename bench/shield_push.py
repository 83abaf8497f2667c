"""Time a firewall rule from its POST to its enforcement on the node: `python -m bench.shield_push [--rules 20]`.

One `cloudlet serve` (SQLite, embedded worker) on this machine's libvirt node builds one server from the tiny
image (set up as bench/instances.py does); then each rule is POSTed through the primary surface and timed
until the IP record reads `active`, which it does once the node's kernel holds the table (nft applied by the
push workflow started after the commit). The rules go to the node's real table; traffic is not involved.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
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
from bench.power import settle
from cloudlet.images.build import build_tiny

POLL_SECONDS = 0.02


def enforced(client: httpx.Client, url: str, timeout: float = 30.0) -> None:
    """Wait until the IP record reads active."""
    deadline = time.monotonic() + timeout
    while client.get(url).json()["status"] != "active":
        if time.monotonic() > deadline:
            raise RuntimeError("the rule was not enforced in time")
        time.sleep(POLL_SECONDS)


def main(argv: list[str] | None = None) -> None:
    """Build one server and time its rules."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rules", type=int, default=20)
    args = parser.parse_args(argv)
    missing = libvirt_missing()
    if missing is not None:
        print(f"Shield push: skipped, libvirt is not ready here ({missing})")
        return
    image_name = f"bench-{uuid.uuid4().hex[:8]}"
    times: list[float] = []
    ids: list[str] = []
    with tempfile.TemporaryDirectory(prefix="cloudlet-bench-shield-") as tmp:
        root = Path(tmp)
        (root / "data").mkdir()
        env = server_env(root / "data", None)
        image = build_tiny(DEFAULT_CACHE, root / "tiny.qcow2")
        try:
            with server(root / "data", env) as running:
                order = set_up(running.base, env, image_name, image, 1)
                headers = {"Authorization": f"Bearer {order.token}"}
                with httpx.Client(base_url=running.base, headers=headers, timeout=30) as client:
                    made = _ok(client.post("/api/instances", json={
                        "name": "shield", "hostname": "shield.example.com", "project_id": order.project_id,
                        "package_id": order.package_id, "category": order.category,
                        "os_template_id": order.template_id, "os_name": "tiny", "billing_cycle": "monthly"}),
                        "creating the server")
                    ids.append(made["id"])
                    settle(client, made["id"], "running", 180)
                    url = f"/api/shield/ips/{client.get('/api/shield/ips').json()[0]['id']}"
                    for port in range(args.rules):
                        sent = time.monotonic()
                        _ok(client.post(f"{url}/rules", json={"action": "allow", "protocol": "tcp",
                                                              "dst_port": 10_000 + port}), "adding a rule")
                        enforced(client, url)
                        times.append(time.monotonic() - sent)
                    ids = delete_all(running.base, order.token, ids)
        finally:
            _remove_from_node(ids, image_name)
    print(f"Shield: rule POST to enforced on the node, {len(times)} rules ({os.cpu_count()} cores): "
          f"p50 {statistics.median(times) * 1000:.0f} ms, p95 {percentile(times, 95) * 1000:.0f} ms, "
          f"max {max(times) * 1000:.0f} ms (aim: 1 s at p95)")


if __name__ == "__main__":
    main(sys.argv[1:])
