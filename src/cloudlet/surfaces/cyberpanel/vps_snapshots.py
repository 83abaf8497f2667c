"""CyberPanel surface: VPS snapshots (GET /api/v1/vps/{id}/snapshots, POST /api/v1/vps/{id}/snapshots/create).

Restore and delete are not in the reference; Cloudlet adds them in the same style:
POST /api/v1/vps/{id}/snapshots/{name}/restore and DELETE /api/v1/vps/{id}/snapshots/{name}.

A snapshot is an internal snapshot of the VPS's disk on its node; `include_ram` (shown as `vmstate`)
keeps a running VPS's memory too, and a restore of such a snapshot brings the VPS back running where
it was. A restore of any other snapshot brings its disk back and boots the VPS if it ran before. Names
are letters, digits and underscores (400 otherwise); a second snapshot of the same name is a 409.

Like start and stop, each answers once its action has ended, or after the server's
instance_power_wait_seconds with "... is being created" (restored, deleted) while it goes on; a failed
action is a 500 SNAPSHOT_FAILED, RESTORE_FAILED or DELETE_FAILED with the reason. Refusals: 409
INSTANCE_BUSY while another action holds the VPS, 403 VPS_SUSPENDED, 404 VPS_NOT_FOUND for a VPS that
is not the caller's, 404 SNAPSHOT_NOT_FOUND.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.responses import Response

from cloudlet.auth.caller import Caller
from cloudlet.backups.models import CopyStatus
from cloudlet.backups.schemas import SnapshotCreate
from cloudlet.instances import copies
from cloudlet.instances.models import ActionStatus
from cloudlet.instances.schemas import ActionRead, SnapshotStarted
from cloudlet.kit.db import Database
from cloudlet.surfaces.cyberpanel.errors import envelope, render
from cloudlet.surfaces.cyberpanel.vps_power import Wording
from cloudlet.surfaces.deps import AppRuntime, DbSession, requires
from cloudlet.surfaces.errors import Problem
from cloudlet.surfaces.settled import SettledAnswer
from cloudlet.tokens.abilities import Ability

router = APIRouter(prefix="/api/v1/vps", tags=["cyberpanel"])
PROCEDURES = copies.PROCEDURES  # loading this surface declares the procedures the worker runs

VpsReader = Annotated[Caller, requires(Ability.INSTANCES_READ)]
VpsWriter = Annotated[Caller, requires(Ability.INSTANCES_WRITE)]

class CpSnapshot(BaseModel):
    """One snapshot in a listing."""

    name: str
    description: str
    created_at: datetime
    vmstate: bool


class CpSnapshotList(BaseModel):
    """GET /api/v1/vps/{id}/snapshots."""

    vps_id: int
    snapshots: list[CpSnapshot]


class CpSnapshotCreate(BaseModel):
    """POST /api/v1/vps/{id}/snapshots/create."""

    name: str = Field(description="Snapshot name (letters, digits and underscores, at most 64).")
    description: str | None = Field(default=None, max_length=500)
    include_ram: bool = Field(default=False, description="Include the running VPS's RAM state.")


class CpSnapshotMade(BaseModel):
    """The snapshot a create, restore or delete worked on."""

    name: str
    description: str
    created_at: datetime


class CpSnapshotAnswer(BaseModel):
    """The data of a create, restore or delete."""

    vps_id: int
    snapshot: CpSnapshotMade


CREATED = Wording("Snapshot created successfully", "Snapshot is being created", "SNAPSHOT_FAILED",
                  "Failed to create snapshot")
RESTORED = Wording("Snapshot restored successfully", "Snapshot is being restored", "RESTORE_FAILED",
                   "Failed to restore snapshot")
DELETED = Wording("Snapshot deleted successfully", "Snapshot is being deleted", "DELETE_FAILED",
                  "Failed to delete snapshot")


def _answer(started: SnapshotStarted, action: ActionRead, words: Wording) -> Response:
    if action.status is ActionStatus.ERROR:
        return render(Problem(500, words.failed_code, f"{words.failed}: {action.error}"))
    snapshot = started.snapshot
    data = CpSnapshotAnswer(vps_id=started.instance_id, snapshot=CpSnapshotMade(
        name=snapshot.name, description=snapshot.description, created_at=snapshot.created_at))
    message = words.done if action.status is ActionStatus.SUCCESS else words.going
    return JSONResponse(envelope(data.model_dump(mode="json"), message))


def _settled(started: SnapshotStarted, words: Wording, db: Database, wait: float) -> SettledAnswer:
    return SettledAnswer(lambda: _answer(started, copies.settle(db, started.action.id, wait), words))


@router.get("/{vps_id}/snapshots", summary="List snapshots")
def list_snapshots(vps_id: str, caller: VpsReader, db: DbSession) -> dict[str, object]:
    """The VPS's snapshots, oldest first."""
    found = copies.list_snapshots(db, caller, vps_id)
    data = CpSnapshotList(vps_id=found.instance_id, snapshots=[
        CpSnapshot(name=s.name, description=s.description, created_at=s.created_at, vmstate=s.include_ram)
        for s in found.snapshots if s.status is CopyStatus.READY])
    return envelope(data.model_dump(mode="json"))


@router.post("/{vps_id}/snapshots/create", summary="Create snapshot (answers once it is taken, or after a wait)")
def create_snapshot(vps_id: str, body: CpSnapshotCreate, caller: VpsWriter, db: DbSession,
                    runtime: AppRuntime) -> Response:
    """Take a snapshot of the VPS's disk (and memory, with include_ram)."""
    started = copies.request_snapshot(db, caller, vps_id, SnapshotCreate(
        name=body.name, description=body.description or "", include_ram=body.include_ram))
    return _settled(started, CREATED, runtime.db, runtime.settings.instance_power_wait_seconds)


@router.post("/{vps_id}/snapshots/{name}/restore", summary="Restore snapshot (Cloudlet addition)")
def restore_snapshot(vps_id: str, name: str, caller: VpsWriter, db: DbSession, runtime: AppRuntime) -> Response:
    """Bring the VPS back to the snapshot."""
    started = copies.request_snapshot_restore(db, caller, vps_id, name)
    return _settled(started, RESTORED, runtime.db, runtime.settings.instance_power_wait_seconds)


@router.delete("/{vps_id}/snapshots/{name}", summary="Delete snapshot (Cloudlet addition)")
def delete_snapshot(vps_id: str, name: str, caller: VpsWriter, db: DbSession, runtime: AppRuntime) -> Response:
    """Delete the snapshot from the VPS's node."""
    started = copies.request_snapshot_delete(db, caller, vps_id, name)
    return _settled(started, DELETED, runtime.db, runtime.settings.instance_power_wait_seconds)
