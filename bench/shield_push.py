"""Time a firewall rule from its POST to its enforcement on the node: `python -m bench.shield_push [--rules 20]`.

One `cloudlet serve` (SQLite, embedded worker) on this machine's libvirt node builds one server from the tiny
image (bench/power.py's one_server); then each rule is POSTed through the primary surface and timed
until the IP record reads `active`, which it does once the node's kernel holds the table (nft applied by the
firewall_push action started after the commit). The rules go to the node's real table; traffic is not involved.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import httpx

from bench.instances import _ok, libvirt_missing, percentile
from bench.power import one_server

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
    times: list[float] = []
    with one_server("shield", 180) as (client, _instance_id):
        url = f"/api/shield/ips/{client.get('/api/shield/ips').json()[0]['id']}"
        for port in range(args.rules):
            sent = time.monotonic()
            _ok(client.post(f"{url}/rules", json={"action": "allow", "protocol": "tcp", "dst_port": 10_000 + port}),
                "adding a rule")
            enforced(client, url)
            times.append(time.monotonic() - sent)
        for rule in client.get(url).json()["rules"]:  # the node's table is left with nothing of the bench's
            client.delete(f"{url}/rules/{rule['id']}")
        enforced(client, url)
    print(f"Shield: rule POST to enforced on the node, {len(times)} rules ({os.cpu_count()} cores): "
          f"p50 {statistics.median(times) * 1000:.0f} ms, p95 {percentile(times, 95) * 1000:.0f} ms, "
          f"max {max(times) * 1000:.0f} ms (aim: 1 s at p95)")


if __name__ == "__main__":
    main(sys.argv[1:])
