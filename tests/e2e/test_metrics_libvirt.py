"""Metrics of a real guest: a `cloudlet serve` process (API + worker, sampling every two seconds) reads a QEMU
guest's counters from this machine's libvirtd; the numbers the surfaces and /metrics show come from it.

One boot serves the whole test, on SQLite only: what differs between engines is covered by
tests/integration/test_metrics.py, and real TCG boots are slow on this shared machine.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest

from cloudlet.drivers.libvirt.guest import LibvirtDriver
from cloudlet.surfaces.deps import Runtime
from tests.e2e.test_instances_libvirt import (
    BOOT_SECONDS,
    DELETION_SECONDS,
    GuestCluster,
    client,
    cluster,
    customer,
    node,
    order,
    status_of,
    tiny_image,
)
from tests.helpers import make_user
from tests.integration.test_worker import wait_for

# one real guest is enough: tests/integration/test_metrics.py runs on both
pytestmark = [pytest.mark.long(seconds=30), pytest.mark.engines("sqlite")]

__all__ = ["cluster", "node", "tiny_image"]  # fixtures this module uses from its neighbour

GIB = 1024**3
SCRAPE_TOKEN = "e2e-scrape-token-0123456789"


def _series(text: str, name: str, uuid: str) -> float:
    found = re.search(rf'^{name}\{{instance_id="{uuid}",[^}}]*\}} (\S+)$', text, re.MULTILINE)
    assert found, f"{name} of {uuid} not in:\n{text}"
    return float(found.group(1))


def test_a_real_guests_counters_reach_every_surface_and_prometheus(
        runtime: Runtime, node: LibvirtDriver, cluster: GuestCluster, tmp_path: Path) -> None:
    cluster.extra = {"CLOUDLET_METRICS_SAMPLE_SCHEDULE": "*/2 * * * * *", "CLOUDLET_METRICS_TOKEN": SCRAPE_TOKEN}
    _process, url = cluster.serve()
    person = customer(runtime)
    with client(url, person) as http:
        created = http.post("/api/instances", json=order(runtime, person, "metered-1.example.com"))
        assert created.status_code == 201, created.text
        server = created.json()
        ordered_at = time.monotonic()
        try:
            wait_for(lambda: status_of(http, server["id"]) == "running", "the guest to run", seconds=BOOT_SECONDS)

            def history() -> list[dict[str, object]]:
                answer = http.get(f"/api/instances/{server['id']}/metrics", params={"period": "5m"})
                assert answer.status_code == 200, answer.text
                found: list[dict[str, object]] = answer.json()["history"]
                return found

            wait_for(lambda: len(history()) >= 2, "two sampled points", seconds=30)
            metrics = http.get(f"/api/instances/{server['id']}/metrics", params={"period": "5m"}).json()
            current = metrics["current"]
            assert current["state"] == "running" and current["vcpus"] == 1
            assert current["memory_total_kb"] == 1024 * 1024 and current["disk_total_bytes"] == 25 * GIB
            assert 0 < current["disk_used_bytes"] < current["disk_total_bytes"]
            assert current["disk_read_bytes"] > 0  # the guest booted from its disk
            # an idle guest may round to 0.0 %; that its CPU time moves is checked on /metrics below
            assert current["cpu_percent"] is not None and 0 <= current["cpu_percent"] <= 100
            points = metrics["history"]
            assert all(0 <= p["cpu_percent"] <= 100 and p["seconds"] > 0 for p in points)

            wc = http.get(f"/v1/vps/{server['id']}/status", headers={"X-API-Key": person.token}).json()
            assert wc["status"] == "running"
            assert 0 < wc["uptime_seconds"] <= time.monotonic() - ordered_at + 2
            cp = http.get(f"/api/v1/vps/{server['id']}/status").json()["data"]
            assert cp["qmpstatus"] == "running" and cp["cpu"]["cores"] == 1 and cp["memory"]["total_bytes"] == GIB
            assert cp["disk"]["read_bytes"] >= current["disk_read_bytes"]
            stats = http.get(f"/v1/instances/{server['id']}/stats").json()
            assert stats["state"] == "running" and stats["disk"]["read_bytes"] >= current["disk_read_bytes"]

            admin = make_user(runtime, "root@example.com", admin=True)
            assert httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {person.token}"}).status_code == 403
            first = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {admin.token}"})
            assert first.status_code == 200, first.text
            cpu_before = _series(first.text, "cloudlet_instance_cpu_seconds_total", server["id"])
            assert cpu_before > 0 and _series(first.text, "cloudlet_instance_up", server["id"]) == 1.0

            def cpu_moved() -> bool:
                text = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {SCRAPE_TOKEN}"}).text
                return _series(text, "cloudlet_instance_cpu_seconds_total", server["id"]) > cpu_before

            wait_for(cpu_moved, "the guest's CPU time to grow between samples", seconds=30)
        finally:
            http.request("DELETE", f"/api/instances/{server['id']}", json={"mode": "immediate"})
            wait_for(lambda: status_of(http, server["id"]) == "gone", "the deletion", seconds=DELETION_SECONDS)
