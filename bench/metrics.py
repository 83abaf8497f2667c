"""Metrics sampling cost and history read cost.

Prints, for SQLite and PostgreSQL: the cost of the sampler's rounds (read every running guest, record
each node's readings, fold and prune history) per 100 instances per minute, at 100 and 1000 running
instances on FakeDriver nodes of 100 guests in this process (so the figure is Cloudlet's own cost:
a libvirt node adds its stats calls on top), with 24 hours of history already stored for every
instance and the clock moved a minute per round, as the default schedule does; then the time to read
one instance's 24-hour history (289 five-minute points, the last hour folded from raw ones on the fly)
and its 1-hour history (61 raw points), with those tables full.

The FakeDriver's counters stand still, which changes no cost: every round still writes one point per
instance. Run: `python -m bench.metrics` (PostgreSQL as in bench.ledger).
"""

from __future__ import annotations

import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import timedelta
from pathlib import Path

from sqlalchemy import insert, text

import cloudlet.models  # noqa: F401  # registers every table
from bench.ledger import postgres_url, sqlite_url
from cloudlet import catalogue_file
from cloudlet.catalog import service as catalog
from cloudlet.drivers.base import GuestSpec
from cloudlet.drivers.fake import FakeDriver
from cloudlet.instances.models import Instance, InstanceStatus
from cloudlet.kit import clock, migrate
from cloudlet.kit.db import Database
from cloudlet.metrics import service as metrics
from cloudlet.metrics.models import MetricPoint, Resolution
from cloudlet.metrics.schemas import Period
from cloudlet.metrics.workflows import sample_all
from cloudlet.nodes import service as nodes
from cloudlet.nodes.schemas import NodeCreate, Resources
from cloudlet.projects.models import Project, ProjectType

PER_NODE = 100
ROUNDS = 15  # three 5-minute buckets, so the folding is in the average
SCALES = (100, 1000)
GIB = 1024**3


def make_image(directory: Path) -> Path:
    """An empty qcow2, what a FakeDriver needs to record an image."""
    path = directory / "tiny.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "1G"], check=True)
    return path


def make_cloud(db: Database, image: Path, count: int) -> tuple[dict[str, FakeDriver], list[int]]:
    """count running instances on nodes of PER_NODE guests each; the drivers by URI and the instance ids."""
    drivers: dict[str, FakeDriver] = {}
    ids: list[int] = []
    with db.session() as s:
        catalogue_file.seed_default(s)
        plan = catalog.get_plan(s, "scout-1")
        region = catalog.list_regions(s)[0]
        project = Project(name="bench", type=ProjectType.TEAM)
        s.add(project)
        s.flush()
        for n in range((count + PER_NODE - 1) // PER_NODE):
            uri = f"qemu+ssh://hv{n}.bench/system"
            node = nodes.create_node(s, NodeCreate(name=f"hv{n}", uri=uri, region=region.code,
                                                   capacity=Resources(vcpu=1000, memory_mib=10**7, disk_gib=10**5)))
            driver = drivers[uri] = FakeDriver()
            driver.import_image("tiny", image)
            for g in range(min(PER_NODE, count - n * PER_NODE)):
                name = f"g-{n}-{g}"
                spec = GuestSpec(name=name, image="tiny", vcpus=1, memory_mib=1024, disk_gib=25, hostname=name)
                driver.create_guest(spec)
                row = Instance(uuid=str(uuid.uuid4()), project_id=project.id, name=name, hostname=name,
                               plan_id=plan.id, region_id=region.id, image="tiny", billing_cycle="monthly", vcpus=1,
                               memory_mib=1024, disk_gib=25, guest_name=name, node_id=node.id, ssh_keys=[],
                               status=InstanceStatus.RUNNING)
                s.add(row)
                s.flush()
                ids.append(row.id)
    return drivers, ids


def fill_history(db: Database, ids: list[int]) -> None:
    """24 hours of history for every instance, as the sampler would have left it at a minute's interval."""
    now = clock.now()
    boundary = metrics.bucket_start(now - metrics.RAW_KEPT)
    first = metrics.bucket_start(now - metrics.HISTORY_KEPT)
    common = {"cpu_percent": 12.5, "vcpus": 1, "memory_mib": 1024, "memory_used_mib": 128,
              "disk_used_bytes": GIB, "disk_total_bytes": 25 * GIB, "disk_read_bps": 1000.0, "disk_write_bps": 500.0,
              "net_rx_bps": 2000.0, "net_tx_bps": 800.0}
    for chunk in range(0, len(ids), 100):
        rows = []
        for instance_id in ids[chunk:chunk + 100]:
            at = first
            while at < boundary:
                rows.append({"instance_id": instance_id, "resolution": Resolution.FIVE_MINUTES, "at": at,
                             "seconds": 300.0, "samples": 5, **common})
                at += metrics.BUCKET
            at = boundary
            while at <= now:
                rows.append({"instance_id": instance_id, "resolution": Resolution.RAW, "at": at, "seconds": 60.0,
                             "samples": 1, **common})
                at += timedelta(minutes=1)
        with db.session() as s:
            s.execute(insert(MetricPoint), rows)
    if not db.is_sqlite:
        with db.engine.connect() as conn:
            conn.execute(text("ANALYZE metric_points"))
            conn.commit()


def rounds(db: Database, drivers: nodes.Drivers) -> list[float]:
    """ROUNDS sampling rounds a minute apart on the clock; each one's duration in milliseconds."""
    sample_all(db, drivers)  # the first reading of each guest: counters only, as after a start
    spent = []
    for minute in range(1, ROUNDS + 1):
        with clock.travel(timedelta(minutes=minute)):
            started = time.perf_counter()
            report = sample_all(db, drivers)
            spent.append((time.perf_counter() - started) * 1000)
        if report.unreachable:
            raise RuntimeError(f"nodes did not answer: {report.unreachable}")
    return spent


def read_cost(runs: int, read: Callable[[], object]) -> float:
    """The median time of a read, in milliseconds."""
    for _ in range(10):
        read()
    samples = []
    for _ in range(runs):
        started = time.perf_counter_ns()
        read()
        samples.append((time.perf_counter_ns() - started) / 1e6)
    return statistics.median(samples)


def run(engine: str, fresh: Callable[[], AbstractContextManager[str]], image: Path) -> None:
    """Every figure on one engine, each scale on a fresh database."""
    for count in SCALES:
        with fresh() as url:
            db = Database(url)
            try:
                migrate.upgrade(db.engine)
                drivers, ids = make_cloud(db, image, count)
                fill_history(db, ids)
                spent = rounds(db, nodes.Drivers(drivers.__getitem__))
                mean, median = statistics.mean(spent), statistics.median(spent)
                per_100 = mean * 100 / count
                print(f"{engine}: {count} running instances on {len(drivers)} nodes, 24 h of history each: a "
                      f"sampling round takes {median:.0f} ms median, {mean:.0f} ms mean (max {max(spent):.0f} ms, "
                      f"with folding) -> {per_100:.1f} ms of work per 100 instances per minute "
                      f"({per_100 / 600:.3f}% of one core)", flush=True)
                if count == SCALES[0]:
                    history_cost(engine, db, ids[0])
            finally:
                db.dispose()


def history_cost(engine: str, db: Database, instance_id: int) -> None:
    """Print the time to read one instance's 24-hour and 1-hour history."""
    now = clock.now() + timedelta(minutes=ROUNDS)

    def read(period: Period) -> Callable[[], object]:
        def once() -> object:
            with db.session(write=False) as s:
                return metrics.history(s, instance_id, period, now)
        return once

    with db.session(write=False) as s:
        day = len(metrics.history(s, instance_id, Period.HOURS_24, now))
        hour = len(metrics.history(s, instance_id, Period.HOUR_1, now))
    print(f"{engine}: history of one instance over 24h ({day} points): {read_cost(200, read(Period.HOURS_24)):.2f} "
          f"ms median; over 1h ({hour} points): {read_cost(200, read(Period.HOUR_1)):.2f} ms median", flush=True)


def main() -> None:
    """SQLite, then PostgreSQL when it answers."""
    with tempfile.TemporaryDirectory() as tmp:
        image = make_image(Path(tmp))
        run("sqlite", sqlite_url, image)
        try:
            run("postgresql", postgres_url, image)
        except Exception as exc:
            if "connect" not in str(exc).lower():
                raise
            print(f"postgresql skipped: {exc}")


if __name__ == "__main__":
    main()
