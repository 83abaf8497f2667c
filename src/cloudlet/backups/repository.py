"""SQL of snapshots and backups (their rows only: which instances are deleted, the instances domain says)."""

from __future__ import annotations

from sqlalchemy import Select, func, select
from sqlalchemy import delete as delete_rows
from sqlalchemy.orm import Session

from cloudlet.backups.models import Backup, Snapshot

# a query of instance ids, made by the instances domain (the deleted instances), used inside one statement here
InstanceIds = Select[int]


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


def snapshot_count(session: Session, instance_id: int) -> int:
    """How many snapshots an instance has recorded, whatever their status."""
    return session.scalar(select(func.count()).select_from(Snapshot)
                          .where(Snapshot.instance_id == instance_id)) or 0


def backups_of_instances(session: Session, instance_ids: InstanceIds, limit: int) -> list[Backup]:
    """Backups (any status) of the given instances, oldest first, at most limit of them."""
    return list(session.scalars(select(Backup).where(Backup.instance_id.in_(instance_ids))
                                .order_by(Backup.id).limit(limit)))


def delete_backup_row(session: Session, backup_id: int) -> None:
    """Remove a backup's row by its row id; one already gone (a discard that ended meanwhile) is fine."""
    session.execute(delete_rows(Backup).where(Backup.id == backup_id).execution_options(synchronize_session=False))


def count_snapshots_of_instances(session: Session, instance_ids: InstanceIds) -> int:
    """How many snapshot rows the given instances have."""
    return session.scalar(select(func.count()).select_from(Snapshot)
                          .where(Snapshot.instance_id.in_(instance_ids))) or 0


def delete_snapshots_of_instances(session: Session, instance_ids: InstanceIds) -> int:
    """Remove the snapshot rows of the given instances; how many."""
    result = session.execute(delete_rows(Snapshot).where(Snapshot.instance_id.in_(instance_ids))
                             .execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)
