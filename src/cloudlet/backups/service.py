"""The records of snapshots and backups, by instance id, and the backup store's files.

What a request may ask of an instance's snapshots and backups, and the actions that carry it out, are
the instances domain's (instances/copies.py): it checks the instance and its state, then records here.
Snapshots and backups are recorded here, so listing them never asks the node.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import structlog
from pydantic import BaseModel
from sqlalchemy.orm import Session

from cloudlet.backups import repository, store
from cloudlet.backups.models import Backup, CopyStatus, Snapshot
from cloudlet.backups.repository import InstanceIds
from cloudlet.backups.schemas import BackupFile, BackupRead, LeftBackup, SnapshotCreate, SnapshotRead, StoredBackup
from cloudlet.config import Settings
from cloudlet.kit import clock
from cloudlet.kit.db import Database
from cloudlet.kit.errors import Conflict, NotFound

log = structlog.get_logger(__name__)


# --- snapshots -----------------------------------------------------------------------------------


def snapshots(session: Session, instance_id: int) -> list[SnapshotRead]:
    """An instance's snapshots as recorded, oldest first."""
    return [SnapshotRead.model_validate(s) for s in repository.snapshots(session, instance_id)]


def snapshot_count(session: Session, instance_id: int) -> int:
    """How many snapshots an instance has (they live inside its disk)."""
    return repository.snapshot_count(session, instance_id)


def find_snapshot(session: Session, instance_id: int, name: str) -> SnapshotRead | None:
    """One snapshot of an instance by name, or None."""
    found = repository.snapshot(session, instance_id, name)
    return None if found is None else SnapshotRead.model_validate(found)


def get_snapshot(session: Session, instance_id: int, name: str) -> SnapshotRead:
    """One snapshot of an instance by name; NotFound otherwise."""
    found = find_snapshot(session, instance_id, name)
    if found is None:
        raise NotFound("snapshot", name, code="SNAPSHOT_NOT_FOUND")
    return found


def ready_snapshot(session: Session, instance_id: int, name: str) -> SnapshotRead:
    """A snapshot that can be restored; NotFound or Conflict (not ready) otherwise."""
    found = get_snapshot(session, instance_id, name)
    if found.status is not CopyStatus.READY:
        raise Conflict(f"Snapshot {name} is {found.status.value}, not ready.", code="SNAPSHOT_NOT_READY")
    return found


def add_snapshot(session: Session, instance_id: int, data: SnapshotCreate) -> SnapshotRead:
    """Record a snapshot being taken; Conflict when the instance has one of that name."""
    if repository.snapshot(session, instance_id, data.name) is not None:
        raise Conflict(f"The instance already has a snapshot named {data.name}.", code="SNAPSHOT_EXISTS")
    row = Snapshot(instance_id=instance_id, name=data.name, description=data.description,
                   include_ram=data.include_ram, status=CopyStatus.CREATING)
    repository.insert(session, row)
    return SnapshotRead.model_validate(row)


def snapshot_taken(session: Session, instance_id: int, name: str, *, ok: bool) -> None:
    """A snapshot is ready, or forgotten when it failed (the node kept nothing of it)."""
    row = repository.snapshot(session, instance_id, name)
    if row is None:
        return
    if ok:
        row.status = CopyStatus.READY
        session.flush()
    else:
        repository.delete(session, row)


def forget_snapshot(session: Session, instance_id: int, name: str) -> None:
    """Remove a snapshot's record (once the node deleted it); one already gone is fine."""
    row = repository.snapshot(session, instance_id, name)
    if row is not None:
        repository.delete(session, row)


# --- backups -------------------------------------------------------------------------------------


def _read(instance_uuid: str, backup: Backup) -> BackupRead:
    return BackupRead(id=backup.uuid, instance_id=backup.instance_id, instance_uuid=instance_uuid,
                      status=backup.status, size_bytes=backup.size_bytes, checksum_sha256=backup.checksum_sha256,
                      error=backup.error, created_at=backup.created_at, completed_at=backup.completed_at)


def backups(session: Session, instance_id: int, instance_uuid: str) -> list[BackupRead]:
    """An instance's backups, newest first."""
    return [_read(instance_uuid, b) for b in repository.backups(session, instance_id)]


def _backup(session: Session, instance_id: int, backup_id: str) -> Backup:
    found = repository.backup(session, instance_id, backup_id)
    if found is None:
        raise NotFound("backup", backup_id, code="BACKUP_NOT_FOUND")
    return found


def _ready_backup(session: Session, instance_id: int, backup_id: str) -> Backup:
    found = _backup(session, instance_id, backup_id)
    if found.status is not CopyStatus.READY or found.checksum_sha256 is None or found.size_bytes is None:
        raise Conflict(f"Backup {backup_id} is {found.status.value}, not ready.", code="BACKUP_NOT_READY")
    return found


def get_backup(session: Session, instance_id: int, instance_uuid: str, backup_id: str) -> BackupRead:
    """One backup of an instance; NotFound otherwise."""
    return _read(instance_uuid, _backup(session, instance_id, backup_id))


def ready_backup(session: Session, instance_id: int, instance_uuid: str, backup_id: str) -> BackupRead:
    """A backup that can be restored or downloaded; NotFound or Conflict (not ready) otherwise."""
    return _read(instance_uuid, _ready_backup(session, instance_id, backup_id))


def add_backup(session: Session, instance_id: int, instance_uuid: str) -> BackupRead:
    """Record a backup being made, with the key the store will keep its file under."""
    public = str(uuid.uuid4())
    row = Backup(uuid=public, instance_id=instance_id, status=CopyStatus.CREATING,
                 store_key=f"{instance_uuid}/{public}.qcow2")
    repository.insert(session, row)
    return _read(instance_uuid, row)


def stored_backup(session: Session, instance_id: int, backup_id: str) -> StoredBackup | None:
    """Where the store keeps a backup of an instance and its checksum, or None when it is not recorded."""
    found = repository.backup(session, instance_id, backup_id)
    if found is None:
        return None
    return StoredBackup(uuid=found.uuid, store_key=found.store_key, checksum_sha256=found.checksum_sha256)


def backup_copied(session: Session, instance_id: int, backup_id: str, size_bytes: int, checksum: str) -> None:
    """A backup's file is in the store: its size and checksum."""
    found = repository.backup(session, instance_id, backup_id)
    if found is not None:
        found.size_bytes, found.checksum_sha256 = size_bytes, checksum
        session.flush()


def backup_ended(session: Session, instance_id: int, backup_id: str, error: str | None) -> None:
    """A backup is ready, or failed with its error."""
    found = repository.backup(session, instance_id, backup_id)
    if found is None:
        return
    found.status = CopyStatus.READY if error is None else CopyStatus.FAILED
    found.completed_at = clock.now()
    found.error = (error or "")[:2000]
    session.flush()


def forget_backup(session: Session, instance_id: int, backup_id: str) -> None:
    """Remove a backup's record (once its file is gone from the store); one already gone is fine."""
    found = repository.backup(session, instance_id, backup_id)
    if found is not None:
        repository.delete(session, found)


def backup_file(session: Session, settings: Settings, instance_id: int, backup_id: str, filename: str) -> BackupFile:
    """A ready backup's bytes from the store (filename without its extension), with its size and checksum."""
    found = _ready_backup(session, instance_id, backup_id)
    try:
        chunks = store.store_for(settings).chunks(found.store_key)
    except FileNotFoundError as error:
        raise NotFound("backup file", backup_id, code="BACKUP_NOT_FOUND") from error
    return BackupFile(filename=f"{filename}-{found.uuid}.qcow2", size_bytes=found.size_bytes or 0,
                      checksum_sha256=found.checksum_sha256 or "", chunks=chunks)


# --- the store's files -----------------------------------------------------------------------------


def checksum_of(path: Path) -> str:
    """The SHA-256 of a local file, as a backup's checksum is recorded."""
    return store.sha256_of(path)


def put_file(settings: Settings, store_key: str, path: Path) -> None:
    """Put a local file into the backup store under store_key (no transaction should be open meanwhile)."""
    store.store_for(settings).put(store_key, path)


def fetch_file(settings: Settings, store_key: str, target: Path) -> None:
    """Copy a stored file to a local path."""
    store.store_for(settings).fetch(store_key, target)


def delete_file(settings: Settings, store_key: str) -> None:
    """Remove a stored file; one already gone is fine."""
    store.store_for(settings).delete(store_key)


# --- what deleted instances leave -----------------------------------------------------------------


def backups_left_by(session: Session, deleted: InstanceIds, limit: int) -> list[LeftBackup]:
    """Backups of the given (deleted) instances, still recorded (their files may still be in the store), oldest
    first."""
    return [LeftBackup(row_id=b.id, uuid=b.uuid, store_key=b.store_key)
            for b in repository.backups_of_instances(session, deleted, limit)]


def forget_backup_row(session: Session, row_id: int) -> None:
    """Remove a backup's row by its row id (once its file is gone from the store); a row already gone is fine."""
    repository.delete_backup_row(session, row_id)


def snapshots_left_by(session: Session, deleted: InstanceIds) -> int:
    """How many snapshot rows the given (deleted) instances still have."""
    return repository.count_snapshots_of_instances(session, deleted)


def forget_snapshots_of(session: Session, deleted: InstanceIds) -> int:
    """Remove the snapshot rows of the given (deleted) instances: the disk that held them went with the guest."""
    return repository.delete_snapshots_of_instances(session, deleted)


BATCH = 100  # backups removed per tick at most; a bigger backlog goes over the next ticks


class PurgeReport(BaseModel):
    """What one sweep removed, and the backups whose file the store would not remove (tried again next tick)."""

    backups: int = 0
    snapshots: int = 0
    kept: list[str] = []


def purge_deleted_instances(db: Database, settings: Settings, deleted: InstanceIds) -> PurgeReport:
    """Remove the backup files and rows, and the snapshot rows, of the deleted instances (a query of their ids).

    Deleting an instance removes its backups, as Hetzner and DigitalOcean do: on each tick of the sweep
    (instances/copies.py gives the deleted instances), a backup's file is removed from the store, then its row;
    the snapshot rows go too (the snapshots went with the guest's disk). A deletion never waits on the store.
    The store is asked with no transaction open, a file first and its row after, so a crash or a store that does
    not answer leaves the row, and the next tick removes the file (a missing one is fine) and the row again.
    """
    report = PurgeReport()
    with db.session(write=False) as session:  # most ticks find nothing: they take no write lock
        stale = snapshots_left_by(session, deleted)
        left = backups_left_by(session, deleted, BATCH)
    if stale:
        with db.session() as session:
            report.snapshots = forget_snapshots_of(session, deleted)
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
            forget_backup_row(session, backup.row_id)
        report.backups += 1
    return report
