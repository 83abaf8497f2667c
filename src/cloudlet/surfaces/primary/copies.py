"""Primary surface: snapshots and backups of an instance (Cloudlet extensions; the Evorxa reference has neither).

They follow the primary surface's style: an instance by its id, timestamps in milliseconds with Z, bare lists,
and every change answered at once (202) with the object and the action that carries it out, whose tasks
GET /api/instances/{id}/actions/{action_id} shows.

    GET    /api/instances/{id}/snapshots                     [Snapshot], oldest first
    POST   /api/instances/{id}/snapshots                     {name, description?, include_ram?}: 202 Snapshot +
                                                             action (status "creating" until it is taken)
    POST   /api/instances/{id}/snapshots/{name}/restore      202 Snapshot + action
    DELETE /api/instances/{id}/snapshots/{name}              202 Snapshot + action; gone from the list once it ends
    GET    /api/instances/{id}/backups                       [Backup], newest first
    POST   /api/instances/{id}/backups                       202 Backup + action (status "creating")
    GET    /api/instances/{id}/backups/{backup_id}           Backup
    GET    /api/instances/{id}/backups/{backup_id}/download  the file (application/octet-stream, a compressed
                                                             qcow2) with Content-Length and X-Checksum-SHA256
    POST   /api/instances/{id}/backups/{backup_id}/restore   202 Backup + action
    DELETE /api/instances/{id}/backups/{backup_id}           202 Backup + action; 404 once it ends

Snapshot = {"instance_id", "name", "description", "include_ram", "status" ("creating", "ready"), "created_at"}.
Backup = {"id", "instance_id", "status" ("creating", "ready", "failed"), "size_bytes", "checksum_sha256",
"error", "created_at", "completed_at"}.

A snapshot is an internal snapshot of the disk on the instance's node (with include_ram, a running guest's
memory too, and a restore brings it back running). A backup is a compressed qcow2 of the whole disk in the
backup store, away from the node; it outlives a reinstall and is removed when the instance is deleted. Both
restores cut the power, bring the disk back, and boot a guest that ran before. While the instance has
snapshots, reinstall and upgrade answer 409 SNAPSHOTS_EXIST (backups do not hold them back).

Refusals, in the primary error format: 422 INVALID_SNAPSHOT_NAME (names are 1 to 64 letters, digits and
underscores), 409 SNAPSHOT_EXISTS, 409 INSTANCE_BUSY while another action holds the instance, 409
SNAPSHOT_NOT_READY / BACKUP_NOT_READY, 403 VPS_SUSPENDED, 404 for another project's instance or an unknown
snapshot or backup.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from cloudlet.auth.caller import Caller
from cloudlet.backups.models import CopyStatus
from cloudlet.backups.schemas import SnapshotCreate, SnapshotRead
from cloudlet.instances import copies
from cloudlet.instances.schemas import BackupStarted, SnapshotStarted
from cloudlet.kit.serial import IsoMillis
from cloudlet.surfaces.backup_views import BackupView, download
from cloudlet.surfaces.deps import AppRuntime, DbSession, requires
from cloudlet.surfaces.primary.instance_schemas import PrimaryActionRead
from cloudlet.tokens.abilities import Ability

router = APIRouter(prefix="/api", tags=["primary"])
PROCEDURES = copies.PROCEDURES  # loading this surface declares the procedures the worker runs

Reader = Annotated[Caller, requires(Ability.INSTANCES_READ)]
Writer = Annotated[Caller, requires(Ability.INSTANCES_WRITE)]


class PrimarySnapshotCreate(BaseModel):
    """POST /api/instances/{id}/snapshots."""

    name: str = Field(description="1 to 64 letters, digits and underscores; unique per instance.")
    description: str | None = Field(default=None, max_length=500)
    include_ram: bool = Field(default=False, description="Keep a running guest's memory too.")


class PrimarySnapshotRead(BaseModel):
    """A snapshot of an instance."""

    instance_id: str
    name: str
    description: str
    include_ram: bool
    status: CopyStatus
    created_at: IsoMillis

    @classmethod
    def of(cls, instance_uuid: str, found: SnapshotRead) -> PrimarySnapshotRead:
        """Render a snapshot."""
        return cls(instance_id=instance_uuid, name=found.name, description=found.description,
                   include_ram=found.include_ram, status=found.status, created_at=found.created_at)


class PrimarySnapshotAccepted(PrimarySnapshotRead):
    """A snapshot and the action that takes, restores or deletes it."""

    action: PrimaryActionRead

    @classmethod
    def of_started(cls, started: SnapshotStarted) -> PrimarySnapshotAccepted:
        """Render a dispatched snapshot action."""
        return cls(**PrimarySnapshotRead.of(started.instance_uuid, started.snapshot).model_dump(),
                   action=PrimaryActionRead.of(started.action))


class PrimaryBackupRead(BackupView):
    """A backup of an instance."""

    created_at: IsoMillis
    completed_at: IsoMillis | None


class PrimaryBackupAccepted(PrimaryBackupRead):
    """A backup and the action that creates, restores or deletes it."""

    action: PrimaryActionRead

    @classmethod
    def of_started(cls, started: BackupStarted) -> PrimaryBackupAccepted:
        """Render a dispatched backup action."""
        return cls(**PrimaryBackupRead.of(started.backup).model_dump(), action=PrimaryActionRead.of(started.action))


# --- snapshots -----------------------------------------------------------------------------------


@router.get("/instances/{instance_id}/snapshots", response_model=list[PrimarySnapshotRead],
            summary="List snapshots (Cloudlet extension)")
def list_snapshots(instance_id: str, caller: Reader, db: DbSession) -> list[PrimarySnapshotRead]:
    """The instance's snapshots, oldest first."""
    found = copies.list_snapshots(db, caller, instance_id)
    return [PrimarySnapshotRead.of(found.instance_uuid, s) for s in found.snapshots]


@router.post("/instances/{instance_id}/snapshots", status_code=202, response_model=PrimarySnapshotAccepted,
             summary="Take a snapshot (Cloudlet extension)")
def create_snapshot(instance_id: str, body: PrimarySnapshotCreate, caller: Writer,
                    db: DbSession) -> PrimarySnapshotAccepted:
    """Snapshot the instance's disk (and memory, with include_ram) on its node."""
    data = SnapshotCreate(name=body.name, description=body.description or "", include_ram=body.include_ram)
    return PrimarySnapshotAccepted.of_started(copies.request_snapshot(db, caller, instance_id, data))


@router.post("/instances/{instance_id}/snapshots/{name}/restore", status_code=202,
             response_model=PrimarySnapshotAccepted, summary="Restore a snapshot (Cloudlet extension)")
def restore_snapshot(instance_id: str, name: str, caller: Writer, db: DbSession) -> PrimarySnapshotAccepted:
    """Bring the instance back to the snapshot."""
    return PrimarySnapshotAccepted.of_started(copies.request_snapshot_restore(db, caller, instance_id, name))


@router.delete("/instances/{instance_id}/snapshots/{name}", status_code=202,
               response_model=PrimarySnapshotAccepted, summary="Delete a snapshot (Cloudlet extension)")
def delete_snapshot(instance_id: str, name: str, caller: Writer, db: DbSession) -> PrimarySnapshotAccepted:
    """Delete the snapshot from the instance's node."""
    return PrimarySnapshotAccepted.of_started(copies.request_snapshot_delete(db, caller, instance_id, name))


# --- backups -------------------------------------------------------------------------------------


@router.get("/instances/{instance_id}/backups", response_model=list[PrimaryBackupRead],
            summary="List backups (Cloudlet extension)")
def list_backups(instance_id: str, caller: Reader, db: DbSession) -> list[PrimaryBackupRead]:
    """The instance's backups, newest first."""
    return [PrimaryBackupRead.of(b) for b in copies.list_backups(db, caller, instance_id)]


@router.post("/instances/{instance_id}/backups", status_code=202, response_model=PrimaryBackupAccepted,
             summary="Back up the whole disk (Cloudlet extension)")
def create_backup(instance_id: str, caller: Writer, db: DbSession) -> PrimaryBackupAccepted:
    """Copy the instance's whole disk into the backup store."""
    return PrimaryBackupAccepted.of_started(copies.request_backup(db, caller, instance_id))


@router.get("/instances/{instance_id}/backups/{backup_id}", response_model=PrimaryBackupRead,
            summary="One backup (Cloudlet extension)")
def get_backup(instance_id: str, backup_id: str, caller: Reader, db: DbSession) -> PrimaryBackupRead:
    """One backup of the instance."""
    return PrimaryBackupRead.of(copies.get_backup(db, caller, instance_id, backup_id))


@router.get("/instances/{instance_id}/backups/{backup_id}/download", response_class=StreamingResponse,
            summary="Download a backup, a compressed qcow2 (Cloudlet extension)")
def download_backup(instance_id: str, backup_id: str, caller: Reader, db: DbSession,
                    runtime: AppRuntime) -> StreamingResponse:
    """Stream the backup file with its size and SHA-256."""
    found = copies.backup_file(db, runtime.settings, caller, instance_id, backup_id)
    return download(found)


@router.post("/instances/{instance_id}/backups/{backup_id}/restore", status_code=202,
             response_model=PrimaryBackupAccepted, summary="Restore a backup (Cloudlet extension)")
def restore_backup(instance_id: str, backup_id: str, caller: Writer, db: DbSession) -> PrimaryBackupAccepted:
    """Write the backup back over the instance's disk (the guest is off meanwhile)."""
    return PrimaryBackupAccepted.of_started(copies.request_backup_restore(db, caller, instance_id, backup_id))


@router.delete("/instances/{instance_id}/backups/{backup_id}", status_code=202,
               response_model=PrimaryBackupAccepted, summary="Delete a backup (Cloudlet extension)")
def delete_backup(instance_id: str, backup_id: str, caller: Writer, db: DbSession) -> PrimaryBackupAccepted:
    """Remove the backup from the backup store."""
    return PrimaryBackupAccepted.of_started(copies.request_backup_delete(db, caller, instance_id, backup_id))
