"""What the snapshots and backups service takes and gives back, in no surface's dialect."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from cloudlet.backups.models import CopyStatus
from cloudlet.instances.schemas import ActionRead

SNAPSHOT_TASKS = ("take_snapshot", "finalize")
BACKUP_TASKS = ("copy_disk", "finalize")
# both restores: the power is cut (the disk is about to be replaced), the disk is brought back, and a guest
# that ran before runs again (a snapshot with memory comes back running by itself)
RESTORE_TASKS = ("power_off_for_restore", "restore_disk", "power_on_after_restore", "finalize")
DISCARD_TASKS = ("discard_copy", "finalize")


class SnapshotCreate(BaseModel):
    """A new snapshot; the name is checked by the service (letters, digits and underscores)."""

    name: str
    description: str = Field(default="", max_length=500)
    include_ram: bool = False


class SnapshotRead(BaseModel):
    """A snapshot of an instance."""

    model_config = ConfigDict(from_attributes=True)

    name: str
    description: str
    include_ram: bool
    status: CopyStatus
    created_at: datetime


class SnapshotList(BaseModel):
    """An instance's snapshots, oldest first."""

    instance_id: int
    instance_uuid: str
    snapshots: list[SnapshotRead]


class SnapshotStarted(BaseModel):
    """A snapshot and the action opened on it (create, restore or delete)."""

    instance_id: int
    instance_uuid: str
    snapshot: SnapshotRead
    action: ActionRead


class BackupRead(BaseModel):
    """A backup of an instance."""

    id: str
    instance_id: int
    instance_uuid: str
    status: CopyStatus
    size_bytes: int | None
    checksum_sha256: str | None
    error: str
    created_at: datetime
    completed_at: datetime | None


class BackupStarted(BaseModel):
    """A backup and the action opened on it (create, restore or delete)."""

    backup: BackupRead
    action: ActionRead


@dataclass(frozen=True)
class BackupFile:
    """A ready backup's bytes, streamed from the store, with what a download tells of them."""

    filename: str
    size_bytes: int
    checksum_sha256: str
    chunks: Iterator[bytes]


class LeftBackup(BaseModel):
    """A backup whose instance is deleted: its row and where the store keeps its file."""

    row_id: int
    uuid: str
    store_key: str
