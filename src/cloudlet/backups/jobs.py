"""The tasks of snapshot and backup actions, run by the instance workflow (instances/workflows.py).

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

from dataclasses import dataclass
from pathlib import Path

import structlog
from sqlalchemy.orm import Session

from cloudlet.actions import service as engine
from cloudlet.actions.registry import Procedure, task
from cloudlet.backups import repository, store
from cloudlet.backups.models import CopyStatus
from cloudlet.backups.schemas import BACKUP_TASKS, DISCARD_TASKS, RESTORE_TASKS, SNAPSHOT_TASKS
from cloudlet.drivers.base import GuestFailed, GuestState
from cloudlet.instances import actions, power
from cloudlet.instances.models import ActionStatus
from cloudlet.instances.schemas import Command
from cloudlet.instances.workflows import READY_WAIT, Work
from cloudlet.kit import clock

log = structlog.get_logger(__name__)

FINAL_TASK = "finalize"


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
            snapshot = repository.snapshot(session, row.id, str(name))
            include_ram = snapshot.include_ram if snapshot is not None else False
        if backup_id is not None:
            backup = repository.backup(session, row.id, str(backup_id))
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
        checksum, size = store.sha256_of(copy), copy.stat().st_size
        store.store_for(work.settings).put(order.store_key, copy)
    finally:
        copy.unlink(missing_ok=True)
    with work.db.session() as session:
        _action, row = actions.locked(session, work.action_id)
        backup = repository.backup(session, row.id, order.backup or "")
        if backup is not None:
            backup.size_bytes, backup.checksum_sha256 = size, checksum
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
    if copy.exists() and store.sha256_of(copy) == order.checksum:
        return copy
    try:
        store.store_for(work.settings).fetch(order.store_key, copy)
    except FileNotFoundError as error:
        raise GuestFailed(f"backup {order.backup} is missing from the backup store") from error
    if store.sha256_of(copy) != order.checksum:
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
    store.store_for(work.settings).delete(order.store_key)
    return f"backup {order.backup} removed from the backup store"


# --- how they end -------------------------------------------------------------------------------------


def conclude(work: Work, task: str | None, reason: str | None) -> None:
    """Sync the instance's status from its node, record how the snapshot or backup ended, end the action."""
    seen = power.observe(work)
    order = order_of(work)
    if reason is not None and order.command is Command.BACKUP:
        store.store_for(work.settings).delete(order.store_key)  # a half-made backup is not kept
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
        if reason is None:
            engine.finish(action, row, ActionStatus.SUCCESS)
        else:
            engine.finish(action, row, ActionStatus.ERROR, reason[:4000])
            row.status_reason = f"{action.command} failed: {reason}"[:2000]
        session.flush()
    if reason is not None:
        log.warning("snapshot or backup action failed", action_id=work.action_id, task=task, reason=reason)


def _record(session: Session, instance_id: int, order: Order, reason: str | None) -> None:
    if order.snapshot is not None:
        snapshot = repository.snapshot(session, instance_id, order.snapshot)
        if snapshot is None:
            return
        if order.command is Command.SNAPSHOT:
            if reason is None:
                snapshot.status = CopyStatus.READY
            else:
                repository.delete(session, snapshot)  # the node kept nothing of a failed snapshot
        elif order.command is Command.DISCARD and reason is None:
            repository.delete(session, snapshot)
        return
    backup = repository.backup(session, instance_id, order.backup or "")
    if backup is None:
        return
    if order.command is Command.BACKUP:
        backup.status = CopyStatus.READY if reason is None else CopyStatus.FAILED
        backup.completed_at = clock.now()
        backup.error = (reason or "")[:2000]
    elif order.command is Command.DISCARD and reason is None:
        repository.delete(session, backup)


SNAPSHOT = Procedure(Command.SNAPSHOT.value, SNAPSHOT_TASKS, (take_snapshot,), conclude)
BACKUP = Procedure(Command.BACKUP.value, BACKUP_TASKS, (copy_disk,), conclude)
RESTORE = Procedure(Command.RESTORE.value, RESTORE_TASKS, (power_off_for_restore, restore_disk, power_on_after_restore),
                    conclude)
DISCARD = Procedure(Command.DISCARD.value, DISCARD_TASKS, (discard_copy,), conclude)
PROCEDURES = (SNAPSHOT, BACKUP, RESTORE, DISCARD)  # registered by app.py
