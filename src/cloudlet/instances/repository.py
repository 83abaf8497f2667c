"""SQL of the instances domain."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Select, func, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from cloudlet.instances.models import Action, ActionStatus, ActionTask, Instance, InstanceStatus, SshKey


def insert(session: Session, row: Instance | Action | ActionTask | SshKey) -> None:
    """Add a row and flush it, so it has its id."""
    session.add(row)
    session.flush()


def instance(session: Session, ident: int | str, *, lock: bool = False) -> Instance | None:
    """An instance by numeric id or public uuid, locked for update when asked."""
    key = Instance.id == ident if isinstance(ident, int) else Instance.uuid == ident
    query = select(Instance).where(key)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return session.scalars(query).first()


def _where(project_ids: Iterable[int], statuses: list[InstanceStatus] | None,
           region_id: int | None) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [Instance.project_id.in_(list(project_ids))]
    if statuses:
        conditions.append(Instance.status.in_(statuses))
    if region_id is not None:
        conditions.append(Instance.region_id == region_id)
    return conditions


def instances(session: Session, project_ids: Iterable[int], *, statuses: list[InstanceStatus] | None = None,
              region_id: int | None = None, limit: int | None = None, offset: int = 0) -> list[Instance]:
    """Instances of some projects, newest first."""
    query = (select(Instance).where(*_where(project_ids, statuses, region_id))
             .order_by(Instance.id.desc()).offset(offset))
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def count(session: Session, project_ids: Iterable[int], *, statuses: list[InstanceStatus] | None = None,
          region_id: int | None = None) -> int:
    """How many instances of some projects match."""
    query = select(func.count()).select_from(Instance).where(*_where(project_ids, statuses, region_id))
    return int(session.scalar(query) or 0)


def action(session: Session, action_id: int, *, lock: bool = False) -> Action | None:
    """An action by id."""
    query = select(Action).where(Action.id == action_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return session.scalars(query).first()


def latest_action(session: Session, instance_id: int, command: str | None = None) -> Action | None:
    """The newest action of an instance (of one command, when given)."""
    query = select(Action).where(Action.instance_id == instance_id)
    if command is not None:
        query = query.where(Action.command == command)
    return session.scalars(query.order_by(Action.id.desc()).limit(1)).first()


def actions(session: Session, instance_id: int, limit: int = 50) -> list[Action]:
    """An instance's actions, newest first."""
    return list(session.scalars(select(Action).where(Action.instance_id == instance_id)
                                .order_by(Action.id.desc()).limit(limit)))


def tasks(session: Session, action_id: int) -> list[ActionTask]:
    """An action's tasks in order."""
    return list(session.scalars(select(ActionTask).where(ActionTask.action_id == action_id)
                                .order_by(ActionTask.position)
                                .execution_options(populate_existing=True)))


def running_actions(session: Session, limit: int = 500) -> list[tuple[int, str, str]]:
    """(id, command, workflow id) of the actions still running, oldest first."""
    rows = session.execute(select(Action.id, Action.command, Action.workflow_id)
                           .where(Action.status == ActionStatus.RUNNING).order_by(Action.id).limit(limit))
    return [(row[0], row[1], row[2]) for row in rows]


def recent_actions(session: Session, *, running_only: bool, limit: int) -> list[tuple[Action, str | None]]:
    """Actions newest first (only the unfinished ones when asked), each with its instance's uuid (None for a
    node's action)."""
    query = select(Action, Instance.uuid).outerjoin(Instance, Instance.id == Action.instance_id)
    if running_only:
        query = query.where(Action.status == ActionStatus.RUNNING)
    rows = session.execute(query.order_by(Action.id.desc()).limit(limit))
    return [(row[0], row[1]) for row in rows]


def due_deletions(session: Session, now: datetime, limit: int = 200) -> list[int]:
    """Ids of instances whose end_of_cycle deletion time has come and that no action holds."""
    query = (select(Instance.id).where(Instance.delete_at.is_not(None), Instance.delete_at <= now,
                                       Instance.locked_action_id.is_(None),
                                       Instance.status.not_in([InstanceStatus.DELETING, InstanceStatus.DELETED]))
             .order_by(Instance.delete_at).limit(limit))
    return list(session.scalars(query))


def deleted_ids() -> Select[int]:
    """The ids of deleted instances, as a query another domain's statement can use (it runs inside that one)."""
    return select(Instance.id).where(Instance.status == InstanceStatus.DELETED)


def ssh_keys(session: Session, project_ids: Iterable[int]) -> list[SshKey]:
    """The kept keys of some projects, oldest first."""
    return list(session.scalars(select(SshKey).where(SshKey.project_id.in_(list(project_ids))).order_by(SshKey.id)))


def ssh_key(session: Session, key_id: int) -> SshKey | None:
    """One kept key."""
    return session.get(SshKey, key_id)


def ssh_key_by_fingerprint(session: Session, project_id: int, fingerprint: str) -> SshKey | None:
    """A project's key with this fingerprint, if kept."""
    return session.scalars(select(SshKey).where(SshKey.project_id == project_id,
                                                SshKey.fingerprint == fingerprint)).first()


def ssh_keys_named(session: Session, project_id: int, name: str) -> list[SshKey]:
    """A project's keys with this name (names are not unique: keys added through /api may share one)."""
    return list(session.scalars(select(SshKey).where(SshKey.project_id == project_id, SshKey.name == name)
                                .order_by(SshKey.id)))


def default_ssh_key(session: Session, project_id: int) -> SshKey | None:
    """A project's default key, if it has one."""
    return session.scalars(select(SshKey).where(SshKey.project_id == project_id, SshKey.is_default.is_(True))
                           .order_by(SshKey.id)).first()


def clear_default_ssh_key(session: Session, project_id: int) -> None:
    """Make no key of the project its default."""
    session.execute(update(SshKey).where(SshKey.project_id == project_id, SshKey.is_default.is_(True))
                    .values(is_default=False).execution_options(synchronize_session="fetch"))


def delete(session: Session, row: SshKey) -> None:
    """Remove a row."""
    session.delete(row)
    session.flush()


def to_suspend(session: Session, references: list[str]) -> list[int]:
    """Ids of the instances among references that are not suspended yet and that no action holds."""
    if not references:
        return []
    return list(session.scalars(select(Instance.id).where(
        Instance.uuid.in_(references), Instance.locked_action_id.is_(None),
        Instance.status.in_([InstanceStatus.RUNNING, InstanceStatus.STOPPED, InstanceStatus.UNKNOWN]))))


def on_node(session: Session, node_id: int) -> list[Instance]:
    """The instances placed on a node that still have a guest there (not deleted)."""
    return list(session.scalars(select(Instance).where(
        Instance.node_id == node_id, Instance.status != InstanceStatus.DELETED).order_by(Instance.id)))


def behind_on_ssh_trust(session: Session, digest: str) -> list[Instance]:
    """Running instances on a node whose guest has not been given the SSH CA's trust files of this digest."""
    return list(session.scalars(select(Instance).where(
        Instance.status == InstanceStatus.RUNNING, Instance.node_id.is_not(None),
        or_(Instance.ssh_trust_digest.is_(None), Instance.ssh_trust_digest != digest)).order_by(Instance.id)))


def record_ssh_trust(session: Session, instance_ids: list[int], digest: str) -> None:
    """Note that these instances' guests hold the SSH CA's trust files of this digest."""
    session.execute(update(Instance).where(Instance.id.in_(instance_ids)).values(ssh_trust_digest=digest))
