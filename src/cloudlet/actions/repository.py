"""SQL of the action engine: actions and their ordered tasks."""

from __future__ import annotations

from sqlalchemy import select
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
