"""The edge's schedules: a round (CLOUDLET_EDGE_RECONCILE_SCHEDULE) that gives the edge its configuration again
whenever what it should serve changed without a push (an origin address that left its server, a certificate
issued) and a reading of what the edge saw of each app (CLOUDLET_EDGE_TRAFFIC_SCHEDULE): requests counted and
the requests the rule set blocked, from the edge's own logs (edge/logs.py); and a daily round
(CLOUDLET_EDGE_RENEWAL_SCHEDULE) that orders again the certificates expiring within 30 days."""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
from dbos import DBOS

from cloudlet import worker
from cloudlet.config import Settings
from cloudlet.edge import logs, push, service
from cloudlet.edge.models import WafBlock
from cloudlet.kit import clock
from cloudlet.kit.db import Database

log = structlog.get_logger(__name__)

RECONCILE_NAME = "cloudlet-edge-reconcile"
TRAFFIC_NAME = "cloudlet-edge-traffic"
RENEWAL_NAME = "cloudlet-edge-renewal"
_given: dict[str, str] = {}  # edge root -> digest of what this process last found the edge should serve
OFFSETS_FILE = "traffic-offsets.json"  # beside the edge's logs: where each app's were read up to, kept across restarts
_reading = threading.Lock()


def _digest_of(served: object, left_out: object) -> str:
    # the certificates' chains are in the repr (a renewal changes it), their keys are not
    return hashlib.sha256(repr((served, left_out)).encode()).hexdigest()


_NOTHING = _digest_of([], [])


def _digest(settings: Settings, db: Database) -> str:
    with db.session(write=False) as session:
        served, left_out = service.served_apps(session, settings)
    return _digest_of(served, sorted(left_out))


def reconcile(db: Database, settings: Settings) -> bool:
    """Give the edge its configuration if what it should serve differs from what this process last gave it;
    whether it was given. A process that gave nothing yet takes the edge to serve nothing: with no app to serve
    it leaves the edge alone (`cloudlet serve` and `cloudlet edge` write the configuration as they start)."""
    root = str(push.layout(settings).root)
    digest = _digest(settings, db)
    if _given.get(root, _NOTHING) == digest:
        return False
    error = push.apply_edge(db, settings)
    if error is None:
        _given[root] = digest
    else:
        log.warning("edge configuration refused", error=error)
    return True


@DBOS.step(name="cloudlet.edge.reconcile")
def reconcile_step() -> bool:
    """One round of reconcile() in the worker."""
    running = worker.current()
    return reconcile(running.db, running.settings)


@DBOS.workflow(name="cloudlet.edge.reconcile_run")
def reconcile_run(scheduled_at: datetime, _context: Any) -> None:
    """One tick of the reconcile schedule."""
    if reconcile_step():
        log.info("edge configuration given", scheduled_at=scheduled_at.isoformat())


def read_traffic(db: Database, settings: Settings) -> int:
    """Count what the edge saw of each app since the last reading and keep its blocked requests; the number of
    requests counted."""
    where = push.layout(settings)
    counted = 0
    with _reading:
        with db.session(write=False) as session:
            app_ids = [app.app_id for app in service.served_apps(session, settings)[0]]
        kept = _kept_offsets(where.root / OFFSETS_FILE)
        for app_id in app_ids:
            seen = logs.traffic(where, app_id, logs.Offsets.decode(kept.get(str(app_id), "")))
            if seen.requests or seen.blocked:
                blocks = [WafBlock(at=block.at, client=block.client[:64], rule_id=block.rule_id,
                                   uri=block.uri[:2000], message=block.message[:500]) for block in seen.blocked]
                with db.session() as session:
                    service.record_traffic(session, app_id, seen.requests, blocks)
                counted += seen.requests
            kept[str(app_id)] = seen.offset.encode()  # after the count is recorded: a crash recounts, never skips
            _keep_offsets(where.root / OFFSETS_FILE, kept)
    return counted


def _kept_offsets(path: Path) -> dict[str, str]:
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(key): str(value) for key, value in found.items()} if isinstance(found, dict) else {}


def _keep_offsets(path: Path, kept: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(kept), encoding="utf-8")
    partial.replace(path)


@DBOS.step(name="cloudlet.edge.read_traffic")
def traffic_step() -> int:
    """One reading of the edge's logs in the worker."""
    running = worker.current()
    return read_traffic(running.db, running.settings)


@DBOS.workflow(name="cloudlet.edge.traffic_run")
def traffic_run(scheduled_at: datetime, _context: Any) -> None:
    """One tick of the traffic schedule."""
    counted = traffic_step()
    if counted:
        log.debug("edge traffic read", scheduled_at=scheduled_at.isoformat(), requests=counted)


@DBOS.step(name="cloudlet.edge.renew")
def renew_step() -> list[str]:
    """Order the certificates that expire soon again."""
    running = worker.current()
    with running.db.session() as session:
        return service.renew_due(session, running.settings, clock.now())


@DBOS.workflow(name="cloudlet.edge.renew_run")
def renew_run(scheduled_at: datetime, _context: Any) -> None:
    """One tick of the renewal schedule."""
    ordered = renew_step()
    if ordered:
        log.info("certificates ordered again", scheduled_at=scheduled_at.isoformat(), hostnames=ordered)


def schedules(settings: Settings) -> list[worker.Schedule]:
    """The edge's reconcile, traffic and renewal schedules."""
    return [worker.Schedule(RECONCILE_NAME, reconcile_run, settings.edge_reconcile_schedule),
            worker.Schedule(TRAFFIC_NAME, traffic_run, settings.edge_traffic_schedule),
            worker.Schedule(RENEWAL_NAME, renew_run, settings.edge_renewal_schedule)]

