"""Metrics: the sampler (a real DBOS schedule, every second here) reads guests into history; four surfaces
show live readings and history; history is folded into 5-minute points and bounded; /metrics for operators.

The FakeDriver's counters only move when a guest boots, so the node here is the cloud's FakeDriver behind
MeteredDriver, which adds what a guest under a set load would have done since it started (CPU time, disk
and network bytes growing with real time): every rate the tests expect comes from that load.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest

from cloudlet.catalog import service as catalog
from cloudlet.drivers.base import GuestStats, NodeUnreachable
from cloudlet.drivers.fake import FakeDriver
from cloudlet.instances import repository as instance_rows
from cloudlet.kit import clock
from cloudlet.metrics import repository, service
from cloudlet.metrics.models import Resolution
from cloudlet.metrics.schemas import Period, Reading
from cloudlet.metrics.workflows import sample_all
from cloudlet.nodes import service as nodes
from tests.cloud import Cloud, wait_for
from tests.helpers import make_user, mint_token
from tests.integration.test_instances import order, running

GIB = 1024**3
SCRAPE_TOKEN = "scrape-secret-0123456789abcdef"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Sample every second, and let a scraper in with its own token."""
    # the reconciler (another schedule) would mark a guest stopped behind Cloudlet's back; here only the sampler looks
    return {"metrics_sample_schedule": "* * * * * *", "metrics_token": SCRAPE_TOKEN,
            "instance_reconcile_schedule": "0 0 1 1 *"}


@dataclass
class Load:
    """What a guest does, per second of real time."""

    busy_vcpus: float = 0.5
    disk_read_bps: float = 1_000_000.0
    disk_write_bps: float = 250_000.0
    net_rx_bps: float = 300_000.0
    net_tx_bps: float = 100_000.0


@dataclass
class _Done:
    at: datetime
    cpu_ns: float = 0.0
    disk_read: float = 0.0
    disk_write: float = 0.0
    net_rx: float = 0.0
    net_tx: float = 0.0


class MeteredDriver:
    """The FakeDriver with counters that grow under `load` for as long as a guest runs (and restart with it)."""

    def __init__(self, inner: FakeDriver) -> None:
        self.inner = inner
        self.load = Load()
        self._done: dict[str, _Done] = {}
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _advance(self, name: str, now: datetime) -> _Done:
        done = self._done.setdefault(name, _Done(at=now))
        seconds = (now - done.at).total_seconds()
        load = self.load
        done.cpu_ns += load.busy_vcpus * 1e9 * seconds
        done.disk_read += load.disk_read_bps * seconds
        done.disk_write += load.disk_write_bps * seconds
        done.net_rx += load.net_rx_bps * seconds
        done.net_tx += load.net_tx_bps * seconds
        done.at = now
        return done

    def set_load(self, load: Load) -> None:
        """From now on, guests work at this load (what they did so far stays counted)."""
        with self._lock:
            now = datetime.now(UTC)
            for name in list(self._done):
                self._advance(name, now)
            self.load = load

    def stats(self, name: str) -> GuestStats:
        """The fake's counters plus what the load did since the guest started."""
        base = self.inner.stats(name)
        with self._lock:
            if base.cpu_time_ns == 0:  # stopped: a new start counts from zero
                self._done.pop(name, None)
                return base
            now = datetime.now(UTC)
            done = self._advance(name, now)
            return base._replace(
                sampled_at=now, cpu_time_ns=base.cpu_time_ns + int(done.cpu_ns),
                disk_read_bytes=base.disk_read_bytes + int(done.disk_read),
                disk_write_bytes=base.disk_write_bytes + int(done.disk_write),
                net_rx_bytes=base.net_rx_bytes + int(done.net_rx), net_tx_bytes=base.net_tx_bytes + int(done.net_tx))


@pytest.fixture
def metered(cloud: Cloud) -> Iterator[MeteredDriver]:
    """The cloud's node, metered."""
    driver = MeteredDriver(cloud.driver)
    previous = cloud.runtime.drivers.use(lambda uri: driver)
    try:
        yield driver
    finally:
        cloud.runtime.drivers.use(previous)


def build(cloud: Cloud, **changes: Any) -> dict[str, Any]:
    """A running instance of the customer's."""
    created = cloud.client().post("/api/instances", json=order(cloud, **changes))
    assert created.status_code == 201, created.text
    return running(cloud.client(), created.json()["id"])


def points(cloud: Cloud, instance_id: str, period: str = "5m", at_least: int = 1) -> list[dict[str, Any]]:
    """The instance's history once it has at least that many points."""
    def enough() -> list[dict[str, Any]] | None:
        answer = cloud.client().get(f"/api/instances/{instance_id}/metrics", params={"period": period})
        assert answer.status_code == 200, answer.text
        found: list[dict[str, Any]] = answer.json()["history"]
        return found if len(found) >= at_least else None
    result: list[dict[str, Any]] = wait_for(enough, timeout=30)
    return result


def new_points(cloud: Cloud, instance_id: str, after: str, count: int) -> list[dict[str, Any]]:
    """The first `count` points timed after `after` (ISO)."""
    def enough() -> list[dict[str, Any]] | None:
        found = [p for p in points(cloud, instance_id) if p["timestamp"] > after]
        return found[:count] if len(found) >= count else None
    result: list[dict[str, Any]] = wait_for(enough, timeout=30)
    return result


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def guest_of(cloud: Cloud, instance_id: str) -> str:
    """The guest's name on the node."""
    with cloud.runtime.db.session(write=False) as session:
        row = instance_rows.instance(session, instance_id)
        assert row is not None
        return row.guest_name


# --- sampling into history -------------------------------------------------------------------------


def test_the_sampler_records_the_rates_the_guest_works_at_and_follows_a_change(cloud: Cloud,
                                                                            metered: MeteredDriver) -> None:
    server = build(cloud)
    first = points(cloud, server["id"], at_least=2)
    for point in first:
        assert point["cpu_percent"] == pytest.approx(50.0, abs=0.5)  # half of its one vCPU
        assert point["network_rx_bytes_per_sec"] == pytest.approx(300_000, rel=0.01)
        assert point["network_tx_bytes_per_sec"] == pytest.approx(100_000, rel=0.01)
        assert point["disk_read_bytes_per_sec"] == pytest.approx(1_000_000, rel=0.01)
        assert point["disk_write_bytes_per_sec"] == pytest.approx(250_000, rel=0.01)
        assert point["memory_total_kb"] == 1024 * 1024 and point["memory_used_kb"] == 128 * 1024
        assert point["disk_total_bytes"] == 25 * GIB and point["seconds"] > 0
    assert [p["timestamp"] for p in first] == sorted(p["timestamp"] for p in first)
    # a point covers the time since the reading before it, however late the sampler ran
    for before, after in pairwise(first):
        gap = (_parse(after["timestamp"]) - _parse(before["timestamp"])).total_seconds()
        assert after["seconds"] == pytest.approx(gap, abs=0.01)

    metered.set_load(Load(busy_vcpus=0.1, disk_read_bps=0, disk_write_bps=4096, net_rx_bps=2_000_000, net_tx_bps=0))
    later = new_points(cloud, server["id"], after=_iso(datetime.now(UTC)), count=3)
    steady = later[1:]  # the first new point may straddle the change
    for point in steady:
        assert point["cpu_percent"] == pytest.approx(10.0, abs=0.5)
        assert point["network_rx_bytes_per_sec"] == pytest.approx(2_000_000, rel=0.01)
        assert point["disk_read_bytes_per_sec"] == 0 and point["network_tx_bytes_per_sec"] == 0
        assert point["disk_write_bytes_per_sec"] == pytest.approx(4096, rel=0.02)


def test_cpu_percent_is_of_the_guests_own_vcpus(cloud: Cloud, metered: MeteredDriver) -> None:
    with cloud.runtime.db.session(write=False) as session:
        two = catalog.get_plan(session, "scout-2").id
    server = build(cloud, package_id=two)
    metered.set_load(Load(busy_vcpus=1.0))
    for point in new_points(cloud, server["id"], _iso(datetime.now(UTC)), 3)[1:]:
        assert point["cpu_percent"] == pytest.approx(50.0, abs=0.5)  # one busy vCPU of two


def test_current_is_read_live_and_its_totals_grow(cloud: Cloud, metered: MeteredDriver) -> None:
    server = build(cloud)
    points(cloud, server["id"])  # the sampler has read it at least twice
    first = cloud.client().get(f"/api/instances/{server['id']}/metrics").json()
    second = cloud.client().get(f"/api/instances/{server['id']}/metrics").json()
    now, then = second["current"], first["current"]
    assert now["state"] == "running" and now["vcpus"] == 1
    assert now["network_rx_bytes"] > then["network_rx_bytes"] > 0
    assert now["disk_read_bytes"] > then["disk_read_bytes"] > 0
    assert now["cpu_percent"] == pytest.approx(50.0, abs=1.0)
    assert now["network_rx_bytes_per_sec"] == pytest.approx(300_000, rel=0.02)
    assert now["memory_total_kb"] == 1024 * 1024 and now["memory_used_kb"] == 128 * 1024
    assert now["disk_total_bytes"] == 25 * GIB and now["disk_used_bytes"] == 200_704
    assert first["period"] == "1h" and first["resolution"] == "raw"


def test_a_guest_stopped_and_started_behind_cloudlets_back(cloud: Cloud, metered: MeteredDriver) -> None:
    server = build(cloud)
    client = cloud.client()
    points(cloud, server["id"], at_least=3)
    status = client.get(f"/v1/vps/{server['id']}/status").json()
    assert status["status"] == "running" and status["uptime_seconds"] >= 1
    name = guest_of(cloud, server["id"])

    cloud.driver.poweroff(name)
    off = client.get(f"/v1/vps/{server['id']}/status").json()
    assert off["status"] == "stopped" and off["uptime_seconds"] == 0 and off["cpu_usage_percent"] == 0
    cp = client.get(f"/api/v1/vps/{server['id']}/status").json()["data"]
    assert cp["qmpstatus"] == "stopped" and cp["uptime_seconds"] == 0
    wait_for(lambda: _counters(cloud, server["id"]) is not None and not _counters(cloud, server["id"]).running)
    stopped_at = datetime.now(UTC)
    wait_for(lambda: datetime.now(UTC) > stopped_at + timedelta(seconds=2))
    # no point covers the time it was off
    assert [p for p in points(cloud, server["id"]) if p["timestamp"] > _iso(stopped_at)] == []

    started_at = datetime.now(UTC)
    cloud.driver.start(name)
    wait_for(lambda: _counters(cloud, server["id"]).running)
    again = client.get(f"/v1/vps/{server['id']}/status").json()
    since_start = (datetime.now(UTC) - started_at).total_seconds()
    assert again["status"] == "running" and again["uptime_seconds"] <= since_start + 1  # counted from the start
    fresh = new_points(cloud, server["id"], after=_iso(datetime.now(UTC)), count=2)
    assert all(p["cpu_percent"] == pytest.approx(50.0, abs=0.5) for p in fresh)  # counters from zero, no spike


def _counters(cloud: Cloud, instance_id: str) -> Any:
    with cloud.runtime.db.session(write=False) as session:
        row = instance_rows.instance(session, instance_id)
        assert row is not None
        return repository.counters(session, [row.id]).get(row.id)


# --- the other surfaces ----------------------------------------------------------------------------


def test_cyberpanel_wayscloud_and_shardlyn_show_the_same_guest(cloud: Cloud, metered: MeteredDriver) -> None:
    server = build(cloud)
    client = cloud.client()
    points(cloud, server["id"], at_least=2)
    with cloud.runtime.db.session(write=False) as session:
        row = instance_rows.instance(session, server["id"])
        assert row is not None
        numeric = row.id

    cp = client.get(f"/api/v1/vps/{numeric}/status")
    assert cp.status_code == 200, cp.text
    assert cp.json()["success"] is True
    data = cp.json()["data"]
    assert data["vps_id"] == numeric and data["vmid"] == 100 + numeric and data["name"] == "web-1"
    assert data["status"] == "running" and data["qmpstatus"] == "running" and data["pid"] is None
    assert data["cpu"] == {"usage_percent": pytest.approx(50.0, abs=1.0), "cores": 1}
    assert data["memory"] == {"used_bytes": 128 * 1024**2, "total_bytes": GIB, "usage_percent": 12.5}
    assert data["disk"]["read_bytes"] > 0 and data["disk"]["write_bytes"] > 0
    assert data["network"]["in_bytes"] > 0 and data["network"]["out_bytes"] > 0
    assert data["uptime_seconds"] >= 1

    wc = client.get(f"/v1/vps/{server['id']}/status").json()
    assert set(wc) == {"status", "uptime_seconds", "cpu_usage_percent", "memory_usage_percent", "disk_usage_percent",
                       "network_in_bytes", "network_out_bytes"}
    assert wc["status"] == "running" and wc["memory_usage_percent"] == 12.5
    assert wc["cpu_usage_percent"] == pytest.approx(50.0, abs=1.0)
    assert wc["disk_usage_percent"] == round(100 * 200_704 / (25 * GIB), 1)
    assert wc["network_in_bytes"] >= data["network"]["in_bytes"]

    stats = client.get(f"/v1/instances/{server['id']}/stats").json()
    assert stats["instance_id"] == server["id"] and stats["state"] == "running"
    assert stats["cpu"]["vcpus"] == 1 and stats["memory"]["total_bytes"] == GIB
    assert stats["network"]["rx_bytes_per_sec"] == pytest.approx(300_000, rel=0.02)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stats["sampled_at"])

    history = client.get(f"/v1/instances/{server['id']}/metrics/history", params={"period": "30m"}).json()
    assert history["resolution"] == "raw" and len(history["points"]) >= 2
    assert history["points"][-1]["network_rx_bytes_per_sec"] == pytest.approx(300_000, rel=0.01)
    long = client.get(f"/v1/instances/{server['id']}/metrics/history", params={"period": "24h"}).json()
    assert long["resolution"] == "5m" and 1 <= len(long["points"]) <= 2  # this minute's raw points, folded
    assert long["points"][-1]["cpu_percent"] == pytest.approx(50.0, abs=0.5)


def test_bad_periods_other_tenants_and_missing_abilities_are_refused(cloud: Cloud, metered: MeteredDriver) -> None:
    server = build(cloud)
    client = cloud.client()
    assert client.get(f"/api/instances/{server['id']}/metrics", params={"period": "2h"}).status_code == 422
    shardlyn = client.get(f"/v1/instances/{server['id']}/metrics/history", params={"period": "week"})
    assert shardlyn.status_code == 400 and "period" in shardlyn.json()["error"]
    stranger = cloud.client(make_user(cloud.runtime, "stranger@example.com"))
    paths = [f"/api/instances/{server['id']}/metrics", f"/api/v1/vps/{server['id']}/status",
             f"/v1/vps/{server['id']}/status", f"/v1/instances/{server['id']}/stats",
             f"/v1/instances/{server['id']}/metrics/history", "/api/instances/99999999999/metrics",
             "/v1/vps/99999999999/status"]
    for path in paths:
        assert stranger.get(path).status_code == 404, path
    reader = mint_token(cloud.runtime, cloud.customer, "instances:read")
    assert cloud.api.as_(reader).get(f"/api/instances/{server['id']}/metrics").status_code == 403
    assert cloud.api.as_(reader).get(f"/v1/instances/{server['id']}/stats").status_code == 200
    analyst = mint_token(cloud.runtime, cloud.customer, "analytics:read")
    assert cloud.api.as_(analyst).get(f"/api/instances/{server['id']}/metrics").status_code == 200


def test_a_node_that_does_not_answer_leaves_history_readable(cloud: Cloud, metered: MeteredDriver) -> None:
    server = build(cloud)
    points(cloud, server["id"], at_least=2)
    cloud.worker.stop(grace_seconds=0)  # no sampler from here on: the rounds below are the test's

    def unreachable(uri: str) -> Any:
        raise NodeUnreachable(f"{uri} does not answer")

    report = sample_all(cloud.runtime.db, nodes.Drivers(unreachable))
    assert report.unreachable == ["hv1"] and report.points == 0
    previous = cloud.runtime.drivers.use(unreachable)
    try:
        answer = cloud.client().get(f"/api/instances/{server['id']}/metrics", params={"period": "5m"}).json()
        cp = cloud.client().get(f"/api/v1/vps/{server['id']}/status")
    finally:
        cloud.runtime.drivers.use(previous)
    assert answer["current"]["state"] == "unknown" and answer["current"]["cpu_percent"] is None
    assert answer["current"]["memory_total_kb"] == 1024 * 1024 and len(answer["history"]) >= 2
    assert cp.status_code == 200 and cp.json()["data"]["qmpstatus"] == "unknown"
    assert sample_all(cloud.runtime.db, cloud.runtime.drivers).points == 1  # the node answers again


# --- folding and retention -------------------------------------------------------------------------


def _stats(at: datetime, cpu_ns: int, rx: int) -> GuestStats:
    return GuestStats(sampled_at=at, cpu_time_ns=cpu_ns, vcpus=2, memory_mib=2048, memory_used_mib=512,
                      disk_read_bytes=0, disk_write_bytes=0, disk_read_requests=0, disk_write_requests=0,
                      disk_capacity_bytes=10 * GIB, disk_allocation_bytes=GIB, net_rx_bytes=rx, net_tx_bytes=0,
                      net_rx_packets=0, net_tx_packets=0)


def test_history_is_folded_into_five_minute_points_and_bounded(cloud: Cloud) -> None:
    server = build(cloud)
    cloud.worker.stop(grace_seconds=0)  # the test plays the sampler, through 26 hours of two-minute rounds
    with cloud.runtime.db.session(write=False) as session:
        row = instance_rows.instance(session, server["id"])
        assert row is not None
        instance_id = row.id
    step = timedelta(minutes=2)
    start = service.bucket_start(clock.now()) + timedelta(days=1)  # clear of what the real sampler wrote
    cpu_ns = rx = 0
    written: list[tuple[datetime, float, float]] = []  # (time, cpu %, rx bytes/s) of each raw point
    for n in range(26 * 30 + 1):
        at = start + n * step
        busy, rate = (0.2, 1000.0) if n % 3 else (1.4, 7000.0)  # an uneven load, so averages are not trivial
        if n:
            cpu_ns += int(busy * 1e9 * step.total_seconds())
            rx += int(rate * step.total_seconds())
            written.append((at, busy / 2 * 100, rate))
        with cloud.runtime.db.session() as session:
            service.record(session, [Reading(instance_id, _stats(at, max(cpu_ns, 1), rx), at)])
            service.compact(session, at)
    end = start + 26 * 30 * step

    with cloud.runtime.db.session(write=False) as session:
        raw = repository.points(session, instance_id, Resolution.RAW, start)
        five = repository.points(session, instance_id, Resolution.FIVE_MINUTES, start)
    # raw points only for the last hour and a bucket; 5-minute points for 24 hours before that
    assert raw[0].at >= end - timedelta(minutes=65) and 30 <= len(raw) <= 33
    assert five[0].at >= end - timedelta(hours=24, minutes=5) and 276 <= len(five) <= 277
    assert five[-1].at < raw[0].at
    for point in five[-30:]:
        members = [(c, r) for t, c, r in written if service.bucket_start(t) == point.at]
        assert point.samples == len(members)
        assert point.cpu_percent == pytest.approx(sum(c for c, _ in members) / len(members), abs=0.01)
        assert point.net_rx_bps == pytest.approx(sum(r for _, r in members) / len(members), rel=1e-3)
        assert point.seconds == pytest.approx(120.0 * len(members))
        assert point.memory_used_mib == 512 and point.disk_used_bytes == GIB

    with cloud.runtime.db.session(write=False) as session:
        day = service.history(session, instance_id, Period.HOURS_24, end)
        hour = service.history(session, instance_id, Period.HOUR_1, end)
    assert all(p.resolution is Resolution.FIVE_MINUTES for p in day) and 287 <= len(day) <= 290
    assert [p.at for p in day] == sorted({p.at for p in day})
    assert all((b.at - a.at) == timedelta(minutes=5) for a, b in pairwise(day))
    assert all(p.resolution is Resolution.RAW and p.at >= end - timedelta(hours=1) for p in hour)
    assert len(hour) == 31  # end - 60 min to end, both included
    # the day's total traffic is the same whichever resolution it is read at
    assert sum(p.net_rx_bps * p.seconds for p in day) == pytest.approx(
        sum(r * 120 for t, _, r in written if t >= service.bucket_start(end - timedelta(hours=24))), rel=1e-6)

    with clock.travel(end - clock.now()):  # the API reads the same history at that moment
        answer = cloud.client().get(f"/api/instances/{server['id']}/metrics", params={"period": "24h"}).json()
    assert answer["resolution"] == "5m" and len(answer["history"]) == len(day)
    assert answer["history"][-2]["cpu_percent"] == pytest.approx(day[-2].cpu_percent)
    assert answer["history"][-2]["network_rx_bytes_per_sec"] == pytest.approx(day[-2].net_rx_bps, abs=0.1)

    with cloud.runtime.db.session() as session:
        service.compact(session, end + timedelta(hours=25))
    with cloud.runtime.db.session(write=False) as session:
        assert repository.points(session, instance_id, Resolution.RAW, start) == []
        assert repository.points(session, instance_id, Resolution.FIVE_MINUTES, start) == []
        assert repository.counters(session, [instance_id]) == {}  # not read for a day: forgotten


# --- the operators' /metrics -----------------------------------------------------------------------


def test_prometheus_metrics_for_operators_only(cloud: Cloud, metered: MeteredDriver) -> None:
    server = build(cloud)
    points(cloud, server["id"], at_least=2)
    assert cloud.api.get("/metrics").status_code == 401
    assert cloud.client().get("/metrics").status_code == 403  # a customer's full token
    admin = make_user(cloud.runtime, "root@example.com", admin=True)
    for credential in (admin.token, SCRAPE_TOKEN):
        answer = cloud.api.as_(credential).get("/metrics")
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("text/plain")
    text = answer.text
    assert 'cloudlet_instances{status="running"} 1.0' in text
    assert 'cloudlet_node_up{node="hv1",region="dc1"} 1.0' in text
    assert re.search(r'cloudlet_node_vcpus\{kind="used",node="hv1",region="dc1"\} 1\.0', text)
    labels = f'instance_id="{server["id"]}",name="web-1",node="hv1",project_id="{cloud.customer.project_id}"'
    cpu = re.search(r"cloudlet_instance_cpu_seconds_total\{" + re.escape(labels) + r"\} (\S+)", text)
    rx = re.search(r"cloudlet_instance_network_receive_bytes_total\{" + re.escape(labels) + r"\} (\S+)", text)
    percent = re.search(r"cloudlet_instance_cpu_percent\{" + re.escape(labels) + r"\} (\S+)", text)
    assert cpu and rx and percent, text
    assert float(cpu.group(1)) > 1.0 and float(rx.group(1)) > 300_000 and float(percent.group(1)) == pytest.approx(50,
                                                                                                                 abs=1)
    assert f"cloudlet_instance_up{{{labels}}} 1.0" in text
    assert "cloudlet_metrics_last_sample_timestamp_seconds" in text and "process_cpu_seconds_total" in text
    later = cloud.api.as_(SCRAPE_TOKEN).get("/metrics").text
    again = re.search(r"cloudlet_instance_network_receive_bytes_total\{" + re.escape(labels) + r"\} (\S+)", later)
    assert again and float(again.group(1)) >= float(rx.group(1))
