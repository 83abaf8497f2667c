"""Nodes get their firewall tables: at once after a change commits (its `firewall_push` action, shield/push.py,
through apply_node here), and on a schedule (CLOUDLET_SHIELD_RECONCILE_SCHEDULE) whenever what a node should
enforce differs from what this process last gave it (a push that failed or was missed, a guest built since) or
the node's kernel no longer holds what it was given (a node restarted, a table flushed or edited behind
Cloudlet's back: the drift is logged). The node is asked outside any transaction; what it took (or why it
refused) is recorded after. Another schedule (CLOUDLET_SHIELD_VISIBILITY_SCHEDULE) samples what reached each
address (shield/visibility.py).
"""

from __future__ import annotations

import hashlib
import threading
import time
import weakref
from datetime import datetime
from typing import Any

import structlog
from dbos import DBOS

from cloudlet import worker
from cloudlet.config import Settings
from cloudlet.drivers.base import DriverError
from cloudlet.kit import clock
from cloudlet.kit.db import Database
from cloudlet.nodes import service as nodes
from cloudlet.shield import service, visibility

log = structlog.get_logger(__name__)

SCHEDULE_NAME = "cloudlet-shield-reconcile"
VISIBILITY_SCHEDULE_NAME = "cloudlet-shield-visibility"
_given: dict[int, str] = {}  # node id -> digest of the table this process last gave it
_recorded: dict[int, dict[int, int]] = {}  # node id -> the firewall revisions last recorded as in force there
# a node's driver -> node id -> (digest of the table it refused, when, why): the round does not ask again for a
# while (a remote node, whose agent does not exist yet, refuses every table)
_refused: weakref.WeakKeyDictionary[object, dict[int, tuple[str, float, str]]] = weakref.WeakKeyDictionary()
REFUSED_RETRY_SECONDS = 60.0
_locks: dict[int, threading.Lock] = {}
_locks_guard = threading.Lock()


def _digest(firewalls: object) -> str:
    return hashlib.sha256(repr(firewalls).encode()).hexdigest()


# A node this process has not given anything is taken to hold no firewall: a worker that starts with nothing to
# enforce leaves the node's table alone (another control plane's tests may share this node's kernel)
_NOTHING = _digest([])


def _node_lock(node_id: int) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(node_id, threading.Lock())


def apply_node(db: Database, settings: Settings, drivers: nodes.Drivers, node_id: int, *,
               unless_same: bool = False) -> str | None:
    """Give a node its whole firewall table; why it refused, or None. With unless_same, a node already given
    this same table by this process is left alone. One push per node at a time in this process, each reading
    the table when its turn comes: an older table never lands after a newer one."""
    with _node_lock(node_id):
        return _apply_node(db, settings, drivers, node_id, unless_same=unless_same)


def _apply_node(db: Database, settings: Settings, drivers: nodes.Drivers, node_id: int, *,
                unless_same: bool) -> str | None:
    with db.session(write=False) as session:
        firewalls, revisions = service.node_firewalls(session, settings, node_id)
        uri = nodes.get_node(session, node_id).uri
    digest = _digest(firewalls)
    same = unless_same and _given.get(node_id, _NOTHING) == digest
    if same and (node_id not in _given or not firewalls):  # nothing of ours to keep in force there
        return None
    error, driver = None, None
    try:
        driver = drivers.connect(uri)
        refused = _refused.get(driver, {}).get(node_id)
        if unless_same and refused is not None and refused[0] == digest \
                and time.monotonic() - refused[1] < REFUSED_RETRY_SECONDS:
            return refused[2]  # the node refused this very table lately: a round asks again later, a change at once
        if same:  # written again only if the node's kernel no longer holds what it was given
            if driver.firewalls_in_force(firewalls):
                if _recorded.get(node_id) != revisions:  # a change that left the table as it was
                    _record(db, node_id, revisions, None)
                return None
            log.warning("firewall table drifted; written again", node_id=node_id)
        driver.apply_firewalls(firewalls)
        _given[node_id] = digest
        _refused.get(driver, {}).pop(node_id, None)
    except DriverError as failure:
        error = str(failure) or type(failure).__name__
        _given.pop(node_id, None)
        if driver is not None:
            _refused.setdefault(driver, {})[node_id] = (digest, time.monotonic(), error)
        log.warning("firewall push refused", node_id=node_id, error=error)
    _record(db, node_id, revisions, error)
    return error


def _record(db: Database, node_id: int, revisions: dict[int, int], error: str | None) -> None:
    with db.session() as session:
        service.record_push(session, revisions, error)
    if error is None:
        _recorded[node_id] = revisions
    else:
        _recorded.pop(node_id, None)


@DBOS.step(name="cloudlet.shield.reconcile_nodes")
def reconcile_step() -> list[int]:
    """Give every node whose table should change its table; the nodes given one."""
    running = worker.current()
    with running.db.session(write=False) as session:
        node_ids = [target.id for target in nodes.node_targets(session)]
    given = []
    for node_id in node_ids:
        before = _given.get(node_id, _NOTHING)
        apply_node(running.db, running.settings, running.drivers, node_id, unless_same=True)
        if _given.get(node_id, _NOTHING) != before:
            given.append(node_id)
    return given


@DBOS.workflow(name="cloudlet.shield.reconcile")
def reconcile_run(scheduled_at: datetime, _context: Any) -> None:
    """One tick of the schedule."""
    given = reconcile_step()
    if given:
        log.info("firewall tables given", scheduled_at=scheduled_at.isoformat(), nodes=given)


@DBOS.step(name="cloudlet.shield.sample_traffic")
def sample_step() -> int:
    """Read every node's traffic counters now (shield/visibility.py); the samples kept."""
    running = worker.current()
    return visibility.sample(running.db, running.drivers, clock.now())


@DBOS.workflow(name="cloudlet.shield.visibility")
def visibility_run(scheduled_at: datetime, _context: Any) -> None:
    """One tick of the visibility schedule."""
    kept = sample_step()
    log.debug("traffic sampled", scheduled_at=scheduled_at.isoformat(), samples=kept)


def schedules(settings: Settings) -> list[worker.Schedule]:
    """The reconciliation and visibility schedules the worker applies at start."""
    return [worker.Schedule(SCHEDULE_NAME, reconcile_run, settings.shield_reconcile_schedule),
            worker.Schedule(VISIBILITY_SCHEDULE_NAME, visibility_run, settings.shield_visibility_schedule)]

