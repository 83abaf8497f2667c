"""What the primary and Shardlyn surfaces share about a backup: its fields and its download.

Each surface subclasses BackupView only to give its timestamps its own format (milliseconds on the primary
surface, seconds on Shardlyn's).
"""

from __future__ import annotations

from datetime import datetime
from typing import Self

from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from cloudlet.backups.models import CopyStatus
from cloudlet.backups.schemas import BackupFile, BackupRead


class BackupView(BaseModel):
    """A backup of an instance; instance_id is the instance's uuid."""

    id: str
    instance_id: str
    status: CopyStatus
    size_bytes: int | None
    checksum_sha256: str | None
    error: str
    created_at: datetime
    completed_at: datetime | None

    @classmethod
    def of(cls, found: BackupRead) -> Self:
        """Render a backup."""
        return cls(id=found.id, instance_id=found.instance_uuid, status=found.status, size_bytes=found.size_bytes,
                   checksum_sha256=found.checksum_sha256, error=found.error, created_at=found.created_at,
                   completed_at=found.completed_at)


def download(found: BackupFile) -> StreamingResponse:
    """A backup file streamed as an attachment, with its size and SHA-256."""
    return StreamingResponse(found.chunks, media_type="application/octet-stream", headers={
        "Content-Length": str(found.size_bytes),
        "Content-Disposition": f'attachment; filename="{found.filename}"',
        "X-Checksum-SHA256": found.checksum_sha256,
    })
