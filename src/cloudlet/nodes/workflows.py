"""The node heartbeat as a scheduled DBOS workflow: every few seconds, ask each node's driver what runs
there and mark the node ready or unreachable (see nodes.service.heartbeat). And each node's own firewall
(nodes/firewall.py): pushed at once after a change commits (its node_firewall_push action, nodes/firewall_push.py,
through apply_firewall here), and checked on a
schedule (CLOUDLET_NODE_FIREWALL_RECONCILE_SCHEDULE) that writes it again when what the node should enforce
differs from what this process last gave it, or the node's kernel no longer holds it (a node restarted, its
table flushed or edited behind Cloudlet's back: the drift is logged).

Each node gets its own short transaction, and the driver is asked before any transaction opens, so a
slow or dead node holds no lock (SQLite's write lock included) while it is asked. How a node's URI
becomes a driver is the runtime's Drivers (the worker's, in the scheduled round); the default is a LibvirtDriver.
"""

from __future__ import annotations

import hashlib
import threading
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
from cloudlet.nodes import firewall
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


# --- the node's own firewall --------------------------------------------------------------------------------

FIREWALL_SCHEDULE_NAME = "cloudlet-node-firewall-reconcile"
_given: dict[int, str] = {}  # node id -> digest of the node firewall this process last gave it
_locks: dict[int, threading.Lock] = {}
_locks_guard = threading.Lock()


def _digest(wall: object) -> str:
    return hashlib.sha256(repr(wall).encode()).hexdigest()


def _node_lock(node_id: int) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(node_id, threading.Lock())


def apply_firewall(db: Database, settings: Settings, drivers: nodes.Drivers, node_id: int, *,
                   unless_same: bool = False) -> str | None:
    """Give a node its own firewall table; why it refused, or None. With unless_same, a node already given this
    same firewall by this process is only checked (and written again if its kernel lost it); a node this process
    gave nothing and that has no rules is left alone (its table is not ours to touch). One push per node at a
    time in this process, each reading the rules when its turn comes: an older table never lands after a newer."""
    with _node_lock(node_id):
        try:
            with db.session(write=False) as session:
                uri, wall = firewall.node_firewall(session, settings, node_id)
        except NotFound:  # deleted since
            _given.pop(node_id, None)
            return None
        digest = _digest(wall)
        if unless_same and node_id not in _given and not wall.rules:
            return None
        try:
            driver = drivers.connect(uri)
            if unless_same and _given.get(node_id) == digest:
                if driver.node_firewall_in_force(wall):
                    return None
                log.warning("node firewall table drifted; written again", node_id=node_id)
            driver.apply_node_firewall(wall)
        except DriverError as refused:
            _given.pop(node_id, None)
            error = str(refused) or type(refused).__name__
            log.warning("node firewall push refused", node_id=node_id, error=error)
            return error
        _given[node_id] = digest
        return None


@DBOS.step(name="cloudlet.nodes.reconcile_firewalls")
def reconcile_firewalls_step() -> list[int]:
    """Check every node's own firewall and write those that changed or drifted; the nodes whose push failed."""
    running = worker.current()
    with running.db.session(write=False) as session:
        node_ids = [target.id for target in nodes.node_targets(session)]
    return [node_id for node_id in node_ids
            if apply_firewall(running.db, running.settings, running.drivers, node_id, unless_same=True)]


@DBOS.workflow(name="cloudlet.nodes.firewall_reconcile")
def firewall_reconcile_run(scheduled_at: datetime, _context: Any) -> None:
    """One tick of the node firewall schedule."""
    failed = reconcile_firewalls_step()
    if failed:
        log.warning("node firewalls not written", scheduled_at=scheduled_at.isoformat(), nodes=failed)


def schedules(settings: Settings) -> list[worker.Schedule]:
    """The heartbeat and node firewall schedules the worker applies at start."""
    return [worker.Schedule(SCHEDULE_NAME, heartbeat_run, SCHEDULE),
            worker.Schedule(FIREWALL_SCHEDULE_NAME, firewall_reconcile_run, settings.node_firewall_reconcile_schedule)]

