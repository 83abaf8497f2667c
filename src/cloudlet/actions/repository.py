"""SQL of the action engine: actions and their ordered tasks."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from cloudlet.actions.models import Action, ActionStatus, ActionTask


def action(session: Session, action_id: int, *, lock: bool = False) -> Action | None:
    """An action by id (its row locked for the transaction when asked)."""
    query = select(Action).where(Action.id == action_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return session.scalars(query).first()


def tasks(session: Session, action_id: int) -> list[ActionTask]:
    """An action's tasks in order."""
    return list(session.scalars(select(ActionTask).where(ActionTask.action_id == action_id)
                                .order_by(ActionTask.position)
                                .execution_options(populate_existing=True)))


def running(session: Session, limit: int = 500) -> list[tuple[int, str, str]]:
    """(id, command, workflow id) of the actions still running, oldest first."""
    rows = session.execute(select(Action.id, Action.command, Action.workflow_id)
                           .where(Action.status == ActionStatus.RUNNING).order_by(Action.id).limit(limit))
    return [(row[0], row[1], row[2]) for row in rows]


def failed_since(session: Session, since: datetime, instance_ids: Iterable[int],
                 node_ids: Iterable[int]) -> list[tuple[int | None, int | None, datetime]]:
    """(instance id, node id, finished at) of the actions on these instances or nodes that failed since `since`."""
    instances, nodes = list(set(instance_ids)), list(set(node_ids))
    if not instances and not nodes:
        return []
    query = (select(Action.instance_id, Action.node_id, Action.finished_at)
             .where(Action.status == ActionStatus.ERROR, Action.finished_at >= since,
                    or_(Action.instance_id.in_(instances), Action.node_id.in_(nodes))))
    return [(row[0], row[1], row[2]) for row in session.execute(query) if row[2] is not None]
