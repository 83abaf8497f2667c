"""Snapshots and backups of an instance, recorded so listing them never has to ask the node.

A row is made when its action opens (status "creating") and becomes "ready" when the action ends
well; a failed create removes the snapshot row and marks a backup "failed" (with why). Deleting one is
an action too; its row goes when the action succeeds.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cloudlet.kit import clock
from cloudlet.kit.db import Base, UTCDateTime, enum_column


class CopyStatus(StrEnum):
    """Where a snapshot or a backup stands."""

    CREATING = "creating"
    READY = "ready"
    FAILED = "failed"


class Snapshot(Base):
    """An internal snapshot of an instance's disk (and memory, with include_ram) on its node."""

    __tablename__ = "instance_snapshots"
    __table_args__ = (UniqueConstraint("instance_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(500), default="")
    include_ram: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[CopyStatus] = mapped_column(enum_column(CopyStatus))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)


class Backup(Base):
    """A compressed qcow2 copy of an instance's whole disk in the backup store, with its checksum."""

    __tablename__ = "instance_backups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"), index=True)
    status: Mapped[CopyStatus] = mapped_column(enum_column(CopyStatus))
    store_key: Mapped[str] = mapped_column(String(300))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    checksum_sha256: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str] = mapped_column(String(2000), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
