"""The node heartbeat as a scheduled DBOS workflow: every few seconds, ask each node's driver what runs
there and mark the node ready or unreachable (see nodes.service.heartbeat).

Each node gets its own short transaction, and the driver is asked before any transaction opens, so a
slow or dead node holds no lock (SQLite's write lock included) while it is asked. How a node's URI
becomes a driver is the runtime's Drivers (the worker's, in the scheduled round); the default is a LibvirtDriver.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
from dbos import DBOS
from pydantic import BaseModel

from cloudlet import worker
from cloudlet.config import Settings
from cloudlet.drivers.base import DriverError
from cloudlet.kit.db import Database
from cloudlet.kit.errors import NotFound
from cloudlet.networking import service as networking
from cloudlet.nodes import service as nodes
from cloudlet.nodes.models import NodeStatus

log = structlog.get_logger(__name__)

SCHEDULE_NAME = "cloudlet-node-heartbeat"
SCHEDULE = "*/10 * * * * *"  # every ten seconds: a dead node stops taking guests within a tick


class HeartbeatReport(BaseModel):
    """What one heartbeat round found."""

    ready: list[str] = []
    unreachable: list[str] = []


def _ask(drivers: nodes.Drivers, uri: str, pool_dir: Path, gateways: frozenset[str]) -> nodes.Probe:
    try:
        driver = drivers.connect(uri)
    except DriverError as error:
        return nodes.Probe(unreachable=str(error) or "the node did not answer")
    return nodes.probe(driver, uri, pool_dir, gateways)


def heartbeat_all(db: Database, settings: Settings, drivers: nodes.Drivers) -> HeartbeatReport:
    """Heartbeat every node once, each in its own transaction; a node that cannot be reached is marked so."""
    with db.session(write=False) as session:
        targets = nodes.node_targets(session)
        gateways = networking.gateways(session)
    report = HeartbeatReport()
    pool_dir = settings.data_dir / nodes.POOL_DIR
    for target in targets:
        # no transaction is open while the node answers
        found = _ask(drivers, target.uri, pool_dir, gateways.get(target.region, frozenset()))
        try:
            with db.session() as session:
                read = nodes.record_heartbeat(session, target.id, found)
        except NotFound:  # deleted while it was asked
            continue
        bucket = report.ready if read.health == NodeStatus.READY else report.unreachable
        bucket.append(target.name)
    return report


@DBOS.step(name="cloudlet.nodes.heartbeats")
def heartbeats() -> HeartbeatReport:
    """Ask every node whether it is alive and what it runs."""
    running = worker.current()
    return heartbeat_all(running.db, running.settings, running.drivers)


@DBOS.workflow(name="cloudlet.nodes.heartbeat")
def heartbeat_run(scheduled_at: datetime, _context: Any) -> None:
    """One tick of the heartbeat schedule; logs nodes that are unreachable."""
    report = heartbeats()
    emit = log.warning if report.unreachable else log.debug
    emit("node heartbeat", scheduled_at=scheduled_at.isoformat(), ready=report.ready,
         unreachable=report.unreachable)


def schedules(settings: Settings) -> list[worker.Schedule]:
    """The heartbeat schedule the worker applies at start."""
    return [worker.Schedule(SCHEDULE_NAME, heartbeat_run, SCHEDULE)]
