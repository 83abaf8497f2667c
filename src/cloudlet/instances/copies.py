"""Snapshots and backups of an instance: what a request may ask, the actions that carry it out, and the
schedule that removes what deleted instances leave.

Every create, restore and delete is an Action on the instance (409 while another one holds it or the
state does not allow it, 403 while it is suspended, 404 for another project's instance); the records and
the store are the backups domain's (backups/service.py), which knows nothing of instances.

    snapshot  take_snapshot, finalize
    backup    copy_disk, finalize
    restore   power_off_for_restore, restore_disk, power_on_after_restore, finalize
    discard   discard_copy, finalize

The action's params name the snapshot ("snapshot") or the backup ("backup") it works on, and for a
restore whether the guest ran before it ("boot_after"). A backup is a compressed qcow2 of the whole
disk, copied while the guest is paused (a running guest is paused for the copy, its writes flushed
first, and resumed after), checked with SHA-256 and put in the backup store. A restore cuts the
power first (the disk is about to be replaced, so a graceful shutdown would only cost time), and
boots a guest that ran before once its disk is back (a backup is fetched and its checksum checked
before the power is cut, so a damaged one leaves the guest as it was); a snapshot taken with include_ram brings the
guest back running from its memory by itself. `finalize` (the conclusion) syncs the instance's
status from the node, as power actions do, and records how the snapshot or backup ended.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
from dbos import DBOS
from sqlalchemy.orm import Session

from cloudlet import worker
from cloudlet.actions import service as engine
from cloudlet.actions.registry import Procedure, task
from cloudlet.backups import service as records
from cloudlet.backups.schemas import BackupFile, BackupRead, SnapshotCreate, SnapshotList, SnapshotRead
from cloudlet.config import Settings
from cloudlet.drivers.base import SNAPSHOT_PATTERN, GuestFailed, GuestState
from cloudlet.instances import actions, power, repository
from cloudlet.instances.models import ActionStatus, Instance, InstanceStatus
from cloudlet.instances.schemas import ActionRead, Allowed, BackupStarted, Command, SnapshotStarted
from cloudlet.instances.work import READY_WAIT, Work
from cloudlet.kit.db import Database
from cloudlet.kit.errors import Invalid, NotFound
from cloudlet.projects.schemas import Actor

log = structlog.get_logger(__name__)

SNAPSHOT_TASKS = ("take_snapshot", "finalize")
BACKUP_TASKS = ("copy_disk", "finalize")
# both restores: the power is cut (the disk is about to be replaced), the disk is brought back, and a guest
# that ran before runs again (a snapshot with memory comes back running by itself)
RESTORE_TASKS = ("power_off_for_restore", "restore_disk", "power_on_after_restore", "finalize")
DISCARD_TASKS = ("discard_copy", "finalize")
FINAL_TASK = "finalize"
SETTLE_POLL_SECONDS = 0.2
SCHEDULE_NAME = "cloudlet-backups-sweep"


# --- snapshots -----------------------------------------------------------------------------------


def list_snapshots(session: Session, actor: Actor, ident: int | str) -> SnapshotList:
    """The instance's snapshots as recorded, oldest first."""
    row = actions.instance_of(session, actor, ident)
    return SnapshotList(instance_id=row.id, instance_uuid=row.uuid, snapshots=records.snapshots(session, row.id))


def request_snapshot(session: Session, actor: Actor, ident: int | str, data: SnapshotCreate) -> SnapshotStarted:
    """Record a new snapshot and open the action that takes it."""
    row = actions.instance_of(session, actor, ident, lock=True)
    if not SNAPSHOT_PATTERN.match(data.name):
        raise Invalid("name", "A snapshot name is 1 to 64 letters, digits and underscores.",
                      code="INVALID_SNAPSHOT_NAME")
    actions.require_allowed(row, Allowed.SNAPSHOT)
    snapshot = records.add_snapshot(session, row.id, data)
    return _snapshot_started(session, row, snapshot, Command.SNAPSHOT, SNAPSHOT_TASKS, {})


def request_snapshot_restore(session: Session, actor: Actor, ident: int | str, name: str) -> SnapshotStarted:
    """Open the action that brings the instance back to a ready snapshot."""
    row = actions.instance_of(session, actor, ident, lock=True)
    actions.require_allowed(row, Allowed.SNAPSHOT)
    snapshot = records.ready_snapshot(session, row.id, name)
    return _snapshot_started(session, row, snapshot, Command.RESTORE, RESTORE_TASKS,
                             {"boot_after": row.status is InstanceStatus.RUNNING})


def request_snapshot_delete(session: Session, actor: Actor, ident: int | str, name: str) -> SnapshotStarted:
    """Open the action that deletes a snapshot."""
    row = actions.instance_of(session, actor, ident, lock=True)
    actions.require_allowed(row, Allowed.SNAPSHOT)
    snapshot = records.get_snapshot(session, row.id, name)
    return _snapshot_started(session, row, snapshot, Command.DISCARD, DISCARD_TASKS, {})


def _snapshot_started(session: Session, row: Instance, snapshot: SnapshotRead, command: Command,
                      tasks: tuple[str, ...], params: dict[str, bool]) -> SnapshotStarted:
    action = engine.begin(session, row, command, tasks)
    action.params = {"snapshot": snapshot.name, **params}
    session.flush()
    return SnapshotStarted(instance_id=row.id, instance_uuid=row.uuid, snapshot=snapshot,
                           action=actions.action_read(session, action))


# --- backups -------------------------------------------------------------------------------------


def list_backups(session: Session, actor: Actor, ident: int | str) -> list[BackupRead]:
    """The instance's backups, newest first."""
    row = actions.instance_of(session, actor, ident)
    return records.backups(session, row.id, row.uuid)


def get_backup(session: Session, actor: Actor, ident: int | str, backup_id: str) -> BackupRead:
    """One backup of the instance."""
    row = actions.instance_of(session, actor, ident)
    return records.get_backup(session, row.id, row.uuid, backup_id)


def request_backup(session: Session, actor: Actor, ident: int | str) -> BackupStarted:
    """Record a new backup and open the action that copies the instance's disk into the store."""
    row = actions.instance_of(session, actor, ident, lock=True)
    actions.require_allowed(row, Allowed.BACKUP)
    backup = records.add_backup(session, row.id, row.uuid)
    return _backup_started(session, row, backup, Command.BACKUP, BACKUP_TASKS, {})


def request_backup_restore(session: Session, actor: Actor, ident: int | str, backup_id: str) -> BackupStarted:
    """Open the action that writes a ready backup back over the instance's disk."""
    row = actions.instance_of(session, actor, ident, lock=True)
    actions.require_allowed(row, Allowed.BACKUP)
    backup = records.ready_backup(session, row.id, row.uuid, backup_id)
    return _backup_started(session, row, backup, Command.RESTORE, RESTORE_TASKS,
                           {"boot_after": row.status is InstanceStatus.RUNNING})


def request_backup_delete(session: Session, actor: Actor, ident: int | str, backup_id: str) -> BackupStarted:
    """Open the action that removes a backup from the store."""
    row = actions.instance_of(session, actor, ident, lock=True)
    actions.require_allowed(row, Allowed.BACKUP)
    backup = records.get_backup(session, row.id, row.uuid, backup_id)
    return _backup_started(session, row, backup, Command.DISCARD, DISCARD_TASKS, {})


def _backup_started(session: Session, row: Instance, backup: BackupRead, command: Command, tasks: tuple[str, ...],
                    params: dict[str, bool]) -> BackupStarted:
    action = engine.begin(session, row, command, tasks)
    action.params = {"backup": backup.id, **params}
    session.flush()
    return BackupStarted(backup=backup, action=actions.action_read(session, action))


def backup_file(session: Session, settings: Settings, actor: Actor, ident: int | str, backup_id: str) -> BackupFile:
    """A ready backup's bytes from the store, with its size and checksum."""
    row = actions.instance_of(session, actor, ident)
    return records.backup_file(session, settings, row.id, backup_id, row.hostname.split(".")[0])


# --- waiting ------------------------------------------------------------------------------------------


def settle(db: Database, action_id: int, timeout: float) -> ActionRead:
    """Wait up to timeout seconds for an action to end; the action as it is then.

    Call it once the transaction that opened the action has committed (before, its workflow cannot start).
    """
    deadline = time.monotonic() + timeout
    while True:
        with db.session(write=False) as session:
            action = repository.action(session, action_id)
            if action is None:
                raise NotFound("action", action_id)
            if action.status is not ActionStatus.RUNNING or time.monotonic() >= deadline:
                return actions.action_read(session, action)
        time.sleep(SETTLE_POLL_SECONDS)


# --- what an action works on -------------------------------------------------------------------------


@dataclass(frozen=True)
class Order:
    """What an action works on: a snapshot (by name) or a backup (by id and store key)."""

    command: Command
    snapshot: str | None
    include_ram: bool
    backup: str | None
    store_key: str
    checksum: str | None
    boot_after: bool


def order_of(work: Work) -> Order:
    """The snapshot or backup the action works on, from its params and the recorded rows."""
    with work.db.session() as session:
        action, row = actions.locked(session, work.action_id)
        params = action.params or {}
        name, backup_id = params.get("snapshot"), params.get("backup")
        include_ram, store_key, checksum = False, "", None
        if name is not None:
            snapshot = records.find_snapshot(session, row.id, str(name))
            include_ram = snapshot.include_ram if snapshot is not None else False
        if backup_id is not None:
            backup = records.stored_backup(session, row.id, str(backup_id))
            if backup is None:
                raise GuestFailed(f"backup {backup_id} is no longer recorded")
            store_key, checksum = backup.store_key, backup.checksum_sha256
        return Order(Command(action.command), None if name is None else str(name), include_ram,
                     None if backup_id is None else str(backup_id), store_key, checksum,
                     bool(params.get("boot_after", False)))


def _scratch(work: Work, order: Order, purpose: str) -> Path:
    # beside the local store, so a finished copy is renamed into it rather than copied again
    folder = work.settings.data_dir / "backups" / ".work"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{order.backup}-{purpose}-{work.action_id}.qcow2"


# --- the tasks -------------------------------------------------------------------------------------


@task(1800)
def take_snapshot(work: Work) -> str:
    """The node holds the snapshot (with the guest's memory when asked for and the guest runs)."""
    order = order_of(work)
    driver, name = work.driver()
    if order.snapshot is None:
        raise GuestFailed("the action names no snapshot")
    driver.create_snapshot(name, order.snapshot, include_ram=order.include_ram)
    return f"snapshot {order.snapshot} of guest {name}" + (" with its memory" if order.include_ram else "")


@task(6 * 3600)
def copy_disk(work: Work) -> str:
    """A compressed qcow2 of the guest's whole disk, copied while it was paused, is in the backup store."""
    order = order_of(work)
    driver, name = work.driver()
    copy = _scratch(work, order, "export")
    try:
        driver.export_disk(name, copy)
        checksum, size = records.checksum_of(copy), copy.stat().st_size
        records.put_file(work.settings, order.store_key, copy)
    finally:
        copy.unlink(missing_ok=True)
    with work.db.session() as session:
        _action, row = actions.locked(session, work.action_id)
        records.backup_copied(session, row.id, order.backup or "", size, checksum)
    return f"{size} bytes, sha256 {checksum}"


@task(6 * 3600)
def power_off_for_restore(work: Work) -> str:
    """A backup to restore is fetched and its checksum checked; then the guest is off (its power simply cut:
    its disk is about to be replaced)."""
    order = order_of(work)
    driver, name = work.driver()
    checked = f"backup {order.backup} fetched and checked; " if order.backup is not None else ""
    if order.backup is not None:
        _fetched(work, order)  # a damaged or missing backup ends the action while the guest still runs
    if driver.state(name) == GuestState.STOPPED:
        return f"{checked}guest {name} was off"
    driver.poweroff(name)
    return f"{checked}guest {name} powered off"


def _fetched(work: Work, order: Order) -> Path:
    """The backup in a scratch file, its checksum checked (fetched again if this worker has not got it)."""
    copy = _scratch(work, order, "restore")
    if copy.exists() and records.checksum_of(copy) == order.checksum:
        return copy
    try:
        records.fetch_file(work.settings, order.store_key, copy)
    except FileNotFoundError as error:
        raise GuestFailed(f"backup {order.backup} is missing from the backup store") from error
    if records.checksum_of(copy) != order.checksum:
        copy.unlink(missing_ok=True)
        raise GuestFailed(f"backup {order.backup} is damaged: its checksum does not match")
    return copy


@task(6 * 3600)
def restore_disk(work: Work) -> str:
    """The guest's disk is the snapshot's (its memory too, with include_ram) or the backup's."""
    order = order_of(work)
    driver, name = work.driver()
    if order.snapshot is not None:
        driver.revert_snapshot(name, order.snapshot)
        return f"guest {name} reverted to snapshot {order.snapshot}"
    copy = _fetched(work, order)
    try:
        driver.import_disk(name, copy)
    finally:
        copy.unlink(missing_ok=True)
    return f"guest {name}'s disk written from backup {order.backup}"


@task(120, waits=READY_WAIT)
def power_on_after_restore(work: Work) -> str:
    """A guest that ran before the restore runs again; one that was off stays off."""
    order = order_of(work)
    driver, name = work.driver()
    if driver.state(name) == GuestState.RUNNING:
        return f"guest {name} runs from the snapshot's memory"
    if not order.boot_after:
        return f"guest {name} left off, as it was"
    driver.start(name)
    ready = driver.wait_ready(name, work.settings.instance_ready_timeout_seconds)
    return f"guest {name} is up: hostname={ready.hostname}"


@task(600)
def discard_copy(work: Work) -> str:
    """The snapshot is gone from the node, or the backup from the store."""
    order = order_of(work)
    if order.snapshot is not None:
        driver, name = work.driver()
        driver.delete_snapshot(name, order.snapshot)
        return f"snapshot {order.snapshot} of guest {name} deleted"
    records.delete_file(work.settings, order.store_key)
    return f"backup {order.backup} removed from the backup store"


# --- how they end -------------------------------------------------------------------------------------


def conclude(work: Work, task: str | None, reason: str | None) -> None:
    """Sync the instance's status from its node, record how the snapshot or backup ended, end the action."""
    seen = power.observe(work)
    order = order_of(work)
    if reason is not None and order.command is Command.BACKUP:
        records.delete_file(work.settings, order.store_key)  # a half-made backup is not kept
    if order.command is Command.RESTORE and order.backup is not None:
        _scratch(work, order, "restore").unlink(missing_ok=True)
    with work.db.session() as session:
        action, row = actions.locked(session, work.action_id)
        if action.status is not ActionStatus.RUNNING:
            return
        if task is not None and reason is not None:
            engine.fail_task(session, work.action_id, task, reason)
        _record(session, row.id, order, reason)
        engine.complete_task(session, work.action_id, FINAL_TASK, f"{seen.note}: status {seen.status.value}")
        row.status = seen.status
        actions.end(action, row, reason, failed=action.command)
        session.flush()
    if reason is not None:
        log.warning("snapshot or backup action failed", action_id=work.action_id, task=task, reason=reason)


def _record(session: Session, instance_id: int, order: Order, reason: str | None) -> None:
    if order.snapshot is not None:
        if order.command is Command.SNAPSHOT:  # the node kept nothing of a failed snapshot: its record goes
            records.snapshot_taken(session, instance_id, order.snapshot, ok=reason is None)
        elif order.command is Command.DISCARD and reason is None:
            records.forget_snapshot(session, instance_id, order.snapshot)
        return
    if order.command is Command.BACKUP:
        records.backup_ended(session, instance_id, order.backup or "", reason)
    elif order.command is Command.DISCARD and reason is None:
        records.forget_backup(session, instance_id, order.backup or "")


SNAPSHOT = Procedure(Command.SNAPSHOT.value, SNAPSHOT_TASKS, (take_snapshot,), conclude)


BACKUP = Procedure(Command.BACKUP.value, BACKUP_TASKS, (copy_disk,), conclude)


RESTORE = Procedure(Command.RESTORE.value, RESTORE_TASKS, (power_off_for_restore, restore_disk, power_on_after_restore),
                    conclude)


DISCARD = Procedure(Command.DISCARD.value, DISCARD_TASKS, (discard_copy,), conclude)


PROCEDURES = (SNAPSHOT, BACKUP, RESTORE, DISCARD)  # registered by app.py


# --- what deleted instances leave -----------------------------------------------------------------


@DBOS.step(name="cloudlet.backups.purge", retries_allowed=True, max_attempts=3)
def purge() -> records.PurgeReport:
    """One round of removing what deleted instances left (backups/service.py)."""
    running = worker.current()
    return records.purge_deleted_instances(running.db, running.settings, repository.deleted_ids())


@DBOS.workflow(name="cloudlet.backups.sweep")
def sweep(scheduled_at: datetime, _context: Any) -> None:
    """One tick of the backups sweep; logs what it removed."""
    report = purge()
    if report.backups or report.snapshots or report.kept:
        log.info("removed what deleted instances left", scheduled_at=scheduled_at.isoformat(),
                 **report.model_dump())


def schedules(settings: Settings) -> list[worker.Schedule]:
    """The backups sweep the worker applies at start, on the instance sweep's cadence (it follows deletions)."""
    return [worker.Schedule(SCHEDULE_NAME, sweep, settings.instance_sweep_schedule)]
