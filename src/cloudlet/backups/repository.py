"""SQL of snapshots and backups."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloudlet.backups.models import Backup, Snapshot


def insert(session: Session, row: Snapshot | Backup) -> None:
    """Add a row and flush it, so it has its id."""
    session.add(row)
    session.flush()


def delete(session: Session, row: Snapshot | Backup) -> None:
    """Remove a row."""
    session.delete(row)
    session.flush()


def snapshots(session: Session, instance_id: int) -> list[Snapshot]:
    """An instance's snapshots, oldest first."""
    return list(session.scalars(select(Snapshot).where(Snapshot.instance_id == instance_id)
                                .order_by(Snapshot.created_at, Snapshot.id)))


def snapshot(session: Session, instance_id: int, name: str) -> Snapshot | None:
    """One snapshot of an instance by name."""
    return session.scalars(select(Snapshot).where(Snapshot.instance_id == instance_id,
                                                  Snapshot.name == name)).first()


def backups(session: Session, instance_id: int) -> list[Backup]:
    """An instance's backups, newest first."""
    return list(session.scalars(select(Backup).where(Backup.instance_id == instance_id)
                                .order_by(Backup.created_at.desc(), Backup.id.desc())))


def backup(session: Session, instance_id: int, ident: str) -> Backup | None:
    """One backup of an instance by its public uuid."""
    return session.scalars(select(Backup).where(Backup.instance_id == instance_id, Backup.uuid == ident)).first()
