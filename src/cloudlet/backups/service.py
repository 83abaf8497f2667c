"""Snapshots and backups of an instance: what a request may ask, and the actions that carry it out.

Every create, restore and delete is an Action on the instance (409 while another one holds it or the
state does not allow it, 403 while it is suspended, 404 for another project's instance); the worker
carries it out (jobs.py). Snapshots and backups are recorded here, so listing them never asks the node.
"""

from __future__ import annotations

import time
import uuid

from sqlalchemy.orm import Session

from cloudlet.actions import service as engine
from cloudlet.backups import repository, store
from cloudlet.backups.models import Backup, CopyStatus, Snapshot
from cloudlet.backups.schemas import (
    BACKUP_TASKS,
    DISCARD_TASKS,
    RESTORE_TASKS,
    SNAPSHOT_TASKS,
    BackupFile,
    BackupRead,
    BackupStarted,
    LeftBackup,
    SnapshotCreate,
    SnapshotList,
    SnapshotRead,
    SnapshotStarted,
)
from cloudlet.config import Settings
from cloudlet.drivers.base import SNAPSHOT_PATTERN
from cloudlet.instances import actions
from cloudlet.instances import repository as instance_rows
from cloudlet.instances.models import ActionStatus, Instance, InstanceStatus
from cloudlet.instances.schemas import ActionRead, Allowed, Command
from cloudlet.kit.db import Database
from cloudlet.kit.errors import Conflict, Invalid, NotFound
from cloudlet.projects.schemas import Actor

SETTLE_POLL_SECONDS = 0.2


# --- snapshots -----------------------------------------------------------------------------------


def list_snapshots(session: Session, actor: Actor, ident: int | str) -> SnapshotList:
    """The instance's snapshots as recorded, oldest first."""
    row = actions.instance_of(session, actor, ident)
    return SnapshotList(instance_id=row.id, instance_uuid=row.uuid,
                        snapshots=[SnapshotRead.model_validate(s) for s in repository.snapshots(session, row.id)])


def request_snapshot(session: Session, actor: Actor, ident: int | str, data: SnapshotCreate) -> SnapshotStarted:
    """Record a new snapshot and open the action that takes it."""
    row = actions.instance_of(session, actor, ident, lock=True)
    if not SNAPSHOT_PATTERN.match(data.name):
        raise Invalid("name", "A snapshot name is 1 to 64 letters, digits and underscores.",
                      code="INVALID_SNAPSHOT_NAME")
    actions.require_allowed(row, Allowed.SNAPSHOT)
    if repository.snapshot(session, row.id, data.name) is not None:
        raise Conflict(f"The instance already has a snapshot named {data.name}.", code="SNAPSHOT_EXISTS")
    snapshot = Snapshot(instance_id=row.id, name=data.name, description=data.description,
                        include_ram=data.include_ram, status=CopyStatus.CREATING)
    repository.insert(session, snapshot)
    return _snapshot_started(session, row, snapshot, Command.SNAPSHOT, SNAPSHOT_TASKS, {})


def request_snapshot_restore(session: Session, actor: Actor, ident: int | str, name: str) -> SnapshotStarted:
    """Open the action that brings the instance back to a ready snapshot."""
    row = actions.instance_of(session, actor, ident, lock=True)
    actions.require_allowed(row, Allowed.SNAPSHOT)
    snapshot = _ready_snapshot(session, row, name)
    return _snapshot_started(session, row, snapshot, Command.RESTORE, RESTORE_TASKS,
                             {"boot_after": row.status is InstanceStatus.RUNNING})


def request_snapshot_delete(session: Session, actor: Actor, ident: int | str, name: str) -> SnapshotStarted:
    """Open the action that deletes a snapshot."""
    row = actions.instance_of(session, actor, ident, lock=True)
    actions.require_allowed(row, Allowed.SNAPSHOT)
    snapshot = repository.snapshot(session, row.id, name)
    if snapshot is None:
        raise NotFound("snapshot", name, code="SNAPSHOT_NOT_FOUND")
    return _snapshot_started(session, row, snapshot, Command.DISCARD, DISCARD_TASKS, {})


def snapshot_count(session: Session, instance_id: int) -> int:
    """How many snapshots an instance has (they live inside its disk)."""
    return repository.snapshot_count(session, instance_id)


def _ready_snapshot(session: Session, row: Instance, name: str) -> Snapshot:
    snapshot = repository.snapshot(session, row.id, name)
    if snapshot is None:
        raise NotFound("snapshot", name, code="SNAPSHOT_NOT_FOUND")
    if snapshot.status is not CopyStatus.READY:
        raise Conflict(f"Snapshot {name} is {snapshot.status.value}, not ready.", code="SNAPSHOT_NOT_READY")
    return snapshot


def _snapshot_started(session: Session, row: Instance, snapshot: Snapshot, command: Command,
                      tasks: tuple[str, ...], params: dict[str, bool]) -> SnapshotStarted:
    action = engine.begin(session, row, command, tasks)
    action.params = {"snapshot": snapshot.name, **params}
    session.flush()
    return SnapshotStarted(instance_id=row.id, instance_uuid=row.uuid, snapshot=SnapshotRead.model_validate(snapshot),
                           action=actions.action_read(session, action))


# --- backups -------------------------------------------------------------------------------------


def backup_read(row: Instance, backup: Backup) -> BackupRead:
    """A backup as the service shows it."""
    return BackupRead(id=backup.uuid, instance_id=row.id, instance_uuid=row.uuid, status=backup.status,
                      size_bytes=backup.size_bytes, checksum_sha256=backup.checksum_sha256, error=backup.error,
                      created_at=backup.created_at, completed_at=backup.completed_at)


def list_backups(session: Session, actor: Actor, ident: int | str) -> list[BackupRead]:
    """The instance's backups, newest first."""
    row = actions.instance_of(session, actor, ident)
    return [backup_read(row, backup) for backup in repository.backups(session, row.id)]


def get_backup(session: Session, actor: Actor, ident: int | str, backup_id: str) -> BackupRead:
    """One backup of the instance."""
    row = actions.instance_of(session, actor, ident)
    return backup_read(row, _backup(session, row, backup_id))


def _backup(session: Session, row: Instance, backup_id: str) -> Backup:
    backup = repository.backup(session, row.id, backup_id)
    if backup is None:
        raise NotFound("backup", backup_id, code="BACKUP_NOT_FOUND")
    return backup


def _ready_backup(session: Session, row: Instance, backup_id: str) -> Backup:
    backup = _backup(session, row, backup_id)
    if backup.status is not CopyStatus.READY or backup.checksum_sha256 is None or backup.size_bytes is None:
        raise Conflict(f"Backup {backup_id} is {backup.status.value}, not ready.", code="BACKUP_NOT_READY")
    return backup


def request_backup(session: Session, actor: Actor, ident: int | str) -> BackupStarted:
    """Record a new backup and open the action that copies the instance's disk into the store."""
    row = actions.instance_of(session, actor, ident, lock=True)
    actions.require_allowed(row, Allowed.BACKUP)
    public = str(uuid.uuid4())
    backup = Backup(uuid=public, instance_id=row.id, status=CopyStatus.CREATING,
                    store_key=f"{row.uuid}/{public}.qcow2")
    repository.insert(session, backup)
    return _backup_started(session, row, backup, Command.BACKUP, BACKUP_TASKS, {})


def request_backup_restore(session: Session, actor: Actor, ident: int | str, backup_id: str) -> BackupStarted:
    """Open the action that writes a ready backup back over the instance's disk."""
    row = actions.instance_of(session, actor, ident, lock=True)
    actions.require_allowed(row, Allowed.BACKUP)
    backup = _ready_backup(session, row, backup_id)
    return _backup_started(session, row, backup, Command.RESTORE, RESTORE_TASKS,
                           {"boot_after": row.status is InstanceStatus.RUNNING})


def request_backup_delete(session: Session, actor: Actor, ident: int | str, backup_id: str) -> BackupStarted:
    """Open the action that removes a backup from the store."""
    row = actions.instance_of(session, actor, ident, lock=True)
    actions.require_allowed(row, Allowed.BACKUP)
    backup = _backup(session, row, backup_id)
    return _backup_started(session, row, backup, Command.DISCARD, DISCARD_TASKS, {})


def _backup_started(session: Session, row: Instance, backup: Backup, command: Command, tasks: tuple[str, ...],
                    params: dict[str, bool]) -> BackupStarted:
    action = engine.begin(session, row, command, tasks)
    action.params = {"backup": backup.uuid, **params}
    session.flush()
    return BackupStarted(backup=backup_read(row, backup), action=actions.action_read(session, action))


def backup_file(session: Session, settings: Settings, actor: Actor, ident: int | str, backup_id: str) -> BackupFile:
    """A ready backup's bytes from the store, with its size and checksum."""
    row = actions.instance_of(session, actor, ident)
    backup = _ready_backup(session, row, backup_id)
    try:
        chunks = store.store_for(settings).chunks(backup.store_key)
    except FileNotFoundError as error:
        raise NotFound("backup file", backup_id, code="BACKUP_NOT_FOUND") from error
    return BackupFile(filename=f"{row.hostname.split('.')[0]}-{backup.uuid}.qcow2", size_bytes=backup.size_bytes or 0,
                      checksum_sha256=backup.checksum_sha256 or "", chunks=chunks)


# --- what a deleted instance leaves ---------------------------------------------------------------------


def backups_left_by_deleted_instances(session: Session, limit: int) -> list[LeftBackup]:
    """Backups of deleted instances, still recorded (their files may still be in the store), oldest first."""
    return [LeftBackup(row_id=b.id, uuid=b.uuid, store_key=b.store_key)
            for b in repository.backups_of_deleted_instances(session, limit)]


def forget_backup(session: Session, row_id: int) -> None:
    """Remove a backup's row (once its file is gone from the store); a row already gone is fine."""
    repository.delete_backup_row(session, row_id)


def snapshots_left_by_deleted_instances(session: Session) -> int:
    """How many snapshot rows deleted instances still have."""
    return repository.count_snapshots_of_deleted_instances(session)


def forget_snapshots_of_deleted_instances(session: Session) -> int:
    """Remove the snapshot rows of deleted instances: the disk that held them went with the guest."""
    return repository.delete_snapshots_of_deleted_instances(session)


# --- waiting ------------------------------------------------------------------------------------------


def settle(db: Database, action_id: int, timeout: float) -> ActionRead:
    """Wait up to timeout seconds for an action to end; the action as it is then.

    Call it once the transaction that opened the action has committed (before, its workflow cannot start).
    """
    deadline = time.monotonic() + timeout
    while True:
        with db.session(write=False) as session:
            action = instance_rows.action(session, action_id)
            if action is None:
                raise NotFound("action", action_id)
            if action.status is not ActionStatus.RUNNING or time.monotonic() >= deadline:
                return actions.action_read(session, action)
        time.sleep(SETTLE_POLL_SECONDS)
