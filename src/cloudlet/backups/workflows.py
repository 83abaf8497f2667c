"""What a deleted instance leaves behind is removed by a scheduled sweep (on CLOUDLET_INSTANCE_SWEEP_SCHEDULE).

Deleting an instance removes its backups, as Hetzner and DigitalOcean do: each tick, every backup of an
instance whose status is "deleted" has its file removed from the backup store and then its row, and the
snapshot rows of deleted instances go too (the snapshots themselves went with the guest's disk). The
instances domain knows nothing of backups: its delete procedure ends the instance, and this sweep follows
it, so a deletion never waits on (or fails because of) the backup store.

The store is asked with no transaction open, a file first and its row after, so a crash or a store that does
not answer leaves the row, and the next tick removes the file (a missing one is fine) and the row again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog
from dbos import DBOS
from pydantic import BaseModel

from cloudlet import worker
from cloudlet.backups import service, store
from cloudlet.config import Settings
from cloudlet.kit.db import Database

log = structlog.get_logger(__name__)

SCHEDULE_NAME = "cloudlet-backups-sweep"
BATCH = 100  # backups removed per tick at most; a bigger backlog goes over the next ticks


class PurgeReport(BaseModel):
    """What one sweep removed, and the backups whose file the store would not remove (tried again next tick)."""

    backups: int = 0
    snapshots: int = 0
    kept: list[str] = []


def purge_deleted_instances(db: Database, settings: Settings) -> PurgeReport:
    """Remove the backup files and rows, and the snapshot rows, of deleted instances."""
    report = PurgeReport()
    with db.session(write=False) as session:  # most ticks find nothing: they take no write lock
        stale = service.snapshots_left_by_deleted_instances(session)
        left = service.backups_left_by_deleted_instances(session, BATCH)
    if stale:
        with db.session() as session:
            report.snapshots = service.forget_snapshots_of_deleted_instances(session)
    backups = store.store_for(settings)
    for backup in left:
        try:  # no transaction is open while the store answers
            backups.delete(backup.store_key)
        except Exception as error:  # one file the store keeps must not keep the others; the next tick retries
            log.warning("backup of a deleted instance not removed from the store", backup=backup.uuid,
                        error=f"{type(error).__name__}: {error}")
            report.kept.append(backup.uuid)
            continue
        with db.session() as session:
            service.forget_backup(session, backup.row_id)
        report.backups += 1
    return report


@DBOS.step(name="cloudlet.backups.purge", retries_allowed=True, max_attempts=3)
def purge() -> PurgeReport:
    """One round of removing what deleted instances left."""
    running = worker.current()
    return purge_deleted_instances(running.db, running.settings)


@DBOS.workflow(name="cloudlet.backups.sweep")
def sweep(scheduled_at: datetime, _context: Any) -> None:
    """One tick of the sweep; logs what it removed."""
    report = purge()
    if report.backups or report.snapshots or report.kept:
        log.info("removed what deleted instances left", scheduled_at=scheduled_at.isoformat(),
                 **report.model_dump())


def schedules(settings: Settings) -> list[worker.Schedule]:
    """The sweep the worker applies at start, on the instance sweep's cadence (it follows instance deletions)."""
    return [worker.Schedule(SCHEDULE_NAME, sweep, settings.instance_sweep_schedule)]
