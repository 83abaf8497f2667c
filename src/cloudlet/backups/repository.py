"""SQL of snapshots and backups."""

from __future__ import annotations

from sqlalchemy import Select, func, select
from sqlalchemy import delete as delete_rows
from sqlalchemy.orm import Session

from cloudlet.backups.models import Backup, Snapshot
from cloudlet.instances.models import Instance, InstanceStatus


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


def backups_of_deleted_instances(session: Session, limit: int) -> list[Backup]:
    """Backups (any status) whose instance is deleted, oldest first, at most limit of them."""
    return list(session.scalars(select(Backup).join(Instance, Instance.id == Backup.instance_id)
                                .where(Instance.status == InstanceStatus.DELETED)
                                .order_by(Backup.id).limit(limit)))


def delete_backup_row(session: Session, backup_id: int) -> None:
    """Remove a backup's row by its row id; one already gone (a discard that ended meanwhile) is fine."""
    session.execute(delete_rows(Backup).where(Backup.id == backup_id).execution_options(synchronize_session=False))


def _deleted_instances() -> Select[int]:
    return select(Instance.id).where(Instance.status == InstanceStatus.DELETED)


def count_snapshots_of_deleted_instances(session: Session) -> int:
    """How many snapshot rows deleted instances still have."""
    return session.scalar(select(func.count()).select_from(Snapshot)
                          .where(Snapshot.instance_id.in_(_deleted_instances()))) or 0


def delete_snapshots_of_deleted_instances(session: Session) -> int:
    """Remove the snapshot rows of deleted instances (their disk, which held them, is gone); how many."""
    deleted = _deleted_instances()
    result = session.execute(delete_rows(Snapshot).where(Snapshot.instance_id.in_(deleted))
                             .execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)
