"""The metrics sampler as a scheduled DBOS workflow (CLOUDLET_METRICS_SAMPLE_SCHEDULE, every minute by default).

Each round lists the running instances by node in a read-only transaction, asks each node's driver
for its guests' counters with no transaction open (a slow node holds no lock, SQLite's write lock
included), records each node's readings in one short transaction, then folds and prunes history in
another (see service.py for the policy). The rounds go through a queue of concurrency one, so two
never overlap whichever executors run them; a tick that waited longer than MAX_LATENESS behind a slow
round is skipped, so a backlog never builds up.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import groupby
from typing import Any

import structlog
from dbos import DBOS

from cloudlet import worker
from cloudlet.config import Settings
from cloudlet.drivers.base import DriverError
from cloudlet.kit import clock
from cloudlet.kit.db import Database
from cloudlet.metrics import service as metrics
from cloudlet.metrics.schemas import SampleReport
from cloudlet.nodes import service as nodes

log = structlog.get_logger(__name__)

QUEUE = worker.QueueSpec("cloudlet-metrics", global_concurrency=1)
SCHEDULE_NAME = "cloudlet-metrics-sample"
MAX_LATENESS = timedelta(seconds=30)


def sample_all(db: Database, drivers: nodes.Drivers) -> SampleReport:
    """One sampling round: read every running guest, record each node's readings, fold and prune history."""
    with db.session(write=False) as session:
        targets = metrics.sampling_targets(session)
    report = SampleReport()
    for (_node_id, node_name, uri), group in groupby(targets, key=lambda t: (t.node_id, t.node_name, t.node_uri)):
        guests = list(group)
        try:  # no transaction is open while the node answers
            readings, missing = metrics.read_guests(drivers.connect(uri), guests)
        except DriverError as error:
            log.warning("metrics: node did not answer", node=node_name, error=str(error))
            report.unreachable.append(node_name)
            continue
        with db.session() as session:
            report.points += metrics.record(session, readings)
        report.sampled += len(readings)
        report.missing += missing
    with db.session() as session:
        report.folded, report.removed = metrics.compact(session, clock.now())
    return report


@DBOS.step(name="cloudlet.metrics.samples")
def samples() -> SampleReport:
    """Read every running guest's counters into history."""
    running = worker.current()
    return sample_all(running.db, running.drivers)


@DBOS.workflow(name="cloudlet.metrics.sample")
def sample_run(scheduled_at: datetime, _context: Any) -> None:
    """One tick of the sampling schedule (skipped when it waited too long behind a slower round)."""
    tick = scheduled_at if scheduled_at.tzinfo else scheduled_at.replace(tzinfo=UTC)
    late = datetime.now(UTC) - tick  # DBOS ticks on the real clock, whatever kit.clock says
    if late > MAX_LATENESS:
        log.warning("metrics: tick skipped, the previous round ran too long", late_seconds=late.total_seconds())
        return
    report = samples()
    log.debug("metrics sampled", scheduled_at=scheduled_at.isoformat(), **report.model_dump())


def schedules(settings: Settings) -> list[worker.Schedule]:
    """The sampling schedule the worker applies at start."""
    return [worker.Schedule(SCHEDULE_NAME, sample_run, settings.metrics_sample_schedule, queue=QUEUE.name)]
