"""Shardlyn surface: backups of an instance at /v1/instances/{id}/backups.

The reference lists the paths without shapes; these follow Shardlyn's other objects (string ids,
timestamps in seconds with Z, lists under a key, {"error": message}):

    GET    /v1/instances/{id}/backups                 {"backups": [Backup], "total"}, newest first
    POST   /v1/instances/{id}/backups                 202 Backup + "action_id" (status "creating")
    GET    /v1/instances/{id}/backups/{bid}           Backup
    GET    /v1/instances/{id}/backups/{bid}/download  the backup file (application/octet-stream, a compressed
                                                      qcow2), with Content-Length and X-Checksum-SHA256
    POST   /v1/instances/{id}/backups/{bid}/restore   202 Backup + "action_id"
    DELETE /v1/instances/{id}/backups/{bid}           202 Backup + "action_id"; GET answers 404 once it ends

Backup = {"id" (uuid), "instance_id" (the instance's uuid), "status" ("creating", "ready", "failed"),
"size_bytes", "checksum_sha256" (of the file a download gives), "error" (why it failed), "created_at",
"completed_at"}.

A backup is a compressed qcow2 copy of the instance's whole disk, taken while the guest is paused (a
running guest is paused for the copy, its writes flushed first, and resumed after), kept in the backup
store (a directory on the server by default). A restore cuts the guest's power, writes the backup over
its disk, and boots it again if it ran before. Each create, restore and delete is an action: 409 while
another action holds the instance (or a backup that is not ready is downloaded or restored), 403 while
it is suspended, 404 for an instance of an organization the caller is not in or a backup it does not have.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from cloudlet.auth.caller import Caller
from cloudlet.instances import copies
from cloudlet.instances.schemas import BackupStarted
from cloudlet.kit.serial import IsoSeconds
from cloudlet.surfaces.backup_views import BackupView, download
from cloudlet.surfaces.deps import AppRuntime, DbSession, requires
from cloudlet.surfaces.shardlyn.instance_schemas import instance_ident
from cloudlet.tokens.abilities import Ability

router = APIRouter(prefix="/v1/instances", tags=["shardlyn"])
PROCEDURES = copies.PROCEDURES  # loading this surface declares the procedures the worker runs

Reader = Annotated[Caller, requires(Ability.INSTANCES_READ)]
Writer = Annotated[Caller, requires(Ability.INSTANCES_WRITE)]


class ShardlynBackup(BackupView):
    """A backup of an instance."""

    created_at: IsoSeconds
    completed_at: IsoSeconds | None


class ShardlynBackupList(BaseModel):
    """An instance's backups, newest first."""

    backups: list[ShardlynBackup]
    total: int


class ShardlynBackupAccepted(ShardlynBackup):
    """A backup and the action that creates, restores or deletes it."""

    action_id: str

    @classmethod
    def of_started(cls, started: BackupStarted) -> ShardlynBackupAccepted:
        """Render a dispatched backup action."""
        return cls(**ShardlynBackup.of(started.backup).model_dump(), action_id=str(started.action.id))


@router.get("/{instance_id}/backups", response_model=ShardlynBackupList, summary="List backups")
def list_backups(instance_id: str, caller: Reader, db: DbSession) -> ShardlynBackupList:
    """The instance's backups, newest first."""
    found = [ShardlynBackup.of(b) for b in copies.list_backups(db, caller, instance_ident(instance_id))]
    return ShardlynBackupList(backups=found, total=len(found))


@router.post("/{instance_id}/backups", status_code=202, response_model=ShardlynBackupAccepted,
             summary="Create backup")
def create_backup(instance_id: str, caller: Writer, db: DbSession) -> ShardlynBackupAccepted:
    """Copy the instance's whole disk into the backup store."""
    return ShardlynBackupAccepted.of_started(copies.request_backup(db, caller, instance_ident(instance_id)))


@router.get("/{instance_id}/backups/{backup_id}", response_model=ShardlynBackup, summary="Get backup")
def get_backup(instance_id: str, backup_id: str, caller: Reader, db: DbSession) -> ShardlynBackup:
    """One backup of the instance."""
    return ShardlynBackup.of(copies.get_backup(db, caller, instance_ident(instance_id), backup_id))


@router.get("/{instance_id}/backups/{backup_id}/download", response_class=StreamingResponse,
            summary="Download backup (a compressed qcow2)")
def download_backup(instance_id: str, backup_id: str, caller: Reader, db: DbSession,
                    runtime: AppRuntime) -> StreamingResponse:
    """Stream the backup file with its size and SHA-256."""
    found = copies.backup_file(db, runtime.settings, caller, instance_ident(instance_id), backup_id)
    return download(found)


@router.post("/{instance_id}/backups/{backup_id}/restore", status_code=202, response_model=ShardlynBackupAccepted,
             summary="Restore backup")
def restore_backup(instance_id: str, backup_id: str, caller: Writer, db: DbSession) -> ShardlynBackupAccepted:
    """Write the backup back over the instance's disk (the guest is off meanwhile)."""
    return ShardlynBackupAccepted.of_started(
        copies.request_backup_restore(db, caller, instance_ident(instance_id), backup_id))


@router.delete("/{instance_id}/backups/{backup_id}", status_code=202, response_model=ShardlynBackupAccepted,
               summary="Delete backup")
def delete_backup(instance_id: str, backup_id: str, caller: Writer, db: DbSession) -> ShardlynBackupAccepted:
    """Remove the backup from the backup store."""
    return ShardlynBackupAccepted.of_started(
        copies.request_backup_delete(db, caller, instance_ident(instance_id), backup_id))
