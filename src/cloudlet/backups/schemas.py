"""What the snapshots and backups service takes and gives back, in no surface's dialect."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from cloudlet.backups.models import CopyStatus


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


class StoredBackup(BaseModel):
    """Where the store keeps a backup's file, and the checksum it was stored with (None until it is copied)."""

    uuid: str
    store_key: str
    checksum_sha256: str | None


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
