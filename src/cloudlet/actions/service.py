"""An action's life: opened on a holder, its tasks started, completed or failed, then finished.

The engine knows little of what an action works on: an instance's action is handed a holder, any row with an
id and a locked_action_id column, which begin() sets and finish() clears; a node's action (begin_on_node) and
one on neither (begin_unheld: the edge's pushes, a certificate's order) hold nothing. Recording a task touches
only the action, and never again once it ended.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session

from cloudlet.actions import repository
from cloudlet.actions.models import Action, ActionStatus, ActionTask, TaskStatus
from cloudlet.actions.schemas import ActionFailure
from cloudlet.kit import clock
from cloudlet.kit.errors import Conflict, NotFound

STARTED_KEY = "cloudlet_instances_started"  # session.info: (action id, command, workflow id) to start after commit


class Holder(Protocol):
    """What an action holds while it runs: a row whose lock column names the action."""

    id: int
    locked_action_id: int | None


def begin(session: Session, holder: Holder, command: str, tasks: tuple[str, ...]) -> Action:
    """Open an action on a holder whose row the caller locked; Conflict when another action holds it."""
    if holder.locked_action_id is not None:
        raise Conflict("Another action is in progress on this instance; wait until it finishes.",
                       code="INSTANCE_BUSY")
    action = _open(session, command, tasks, instance_id=holder.id)
    holder.locked_action_id = action.id
    session.flush()
    return action


def begin_on_node(session: Session, node_id: int, command: str, tasks: tuple[str, ...]) -> Action:
    """Open an action on a node, which it does not hold: several may wait their turn (a procedure that must
    not overlap on one node serialises its own tasks)."""
    return _open(session, command, tasks, node_id=node_id)


def begin_unheld(session: Session, command: str, tasks: tuple[str, ...],
                 params: dict[str, Any] | None = None) -> Action:
    """Open an action that works on neither an instance nor a node (the edge's pushes, a certificate's order),
    with what its tasks need to know in its params."""
    return _open(session, command, tasks, params=params)


def _open(session: Session, command: str, tasks: tuple[str, ...], *, instance_id: int | None = None,
          node_id: int | None = None, params: dict[str, Any] | None = None) -> Action:
    action = Action(instance_id=instance_id, node_id=node_id, command=str(command), status=ActionStatus.RUNNING,
                    progress=0, current_task=tasks[0], workflow_id=f"cloudlet-action-{uuid.uuid4().hex}",
                    params=dict(params or {}), started_at=clock.now())
    session.add(action)
    session.flush()
    session.add_all([ActionTask(action_id=action.id, name=name, position=position, status=TaskStatus.PENDING,
                                detail="") for position, name in enumerate(tasks, start=1)])
    session.flush()
    # The workflow starts only once the request's transaction commits (runner.py reads this list).
    session.info.setdefault(STARTED_KEY, []).append((action.id, action.command, action.workflow_id))
    return action


def locked_action(session: Session, action_id: int) -> Action:
    """The action with its row locked for the transaction; NotFound when there is none."""
    found = repository.action(session, action_id, lock=True)
    if found is None:
        raise NotFound("action", action_id)
    return found


def finish(action: Action, holder: Holder | None, status: ActionStatus, error: str | None = None) -> None:
    """End an action with its status (and error) and free its holder if the action still holds it."""
    action.status, action.finished_at, action.error = status, clock.now(), error
    if status is ActionStatus.SUCCESS:
        action.progress, action.current_task = 100, None
    if holder is not None and holder.locked_action_id == action.id:
        holder.locked_action_id = None


def running_action(session: Session, action_id: int) -> Action | None:
    """The action, its row locked, if it has not ended (an ended one is never changed again)."""
    found = repository.action(session, action_id, lock=True)
    if found is None:
        raise NotFound("action", action_id)
    return found if found.status is ActionStatus.RUNNING else None


def is_running(session: Session, action_id: int) -> bool:
    """Whether the action has not ended yet."""
    found = repository.action(session, action_id)
    return found is not None and found.status is ActionStatus.RUNNING


def start_task(session: Session, action_id: int, name: str) -> None:
    """Mark a task in progress and make it the action's current task (nothing once the action ended)."""
    action = running_action(session, action_id)
    if action is None:
        return
    for task in repository.tasks(session, action_id):
        if task.name == name and task.status is not TaskStatus.COMPLETED:
            task.status, task.started_at = TaskStatus.IN_PROGRESS, task.started_at or clock.now()
    action.current_task = name
    session.flush()


def complete_task(session: Session, action_id: int, name: str, detail: str = "") -> None:
    """Mark a task done and move the action's progress on (nothing once the action ended: a late task)."""
    action = running_action(session, action_id)
    if action is None:
        return
    tasks = repository.tasks(session, action_id)
    for task in tasks:
        if task.name == name:
            task.status, task.finished_at, task.detail = TaskStatus.COMPLETED, clock.now(), detail[:2000]
    done = sum(1 for t in tasks if t.status is TaskStatus.COMPLETED)
    action.progress = min(100, done * 100 // max(1, len(tasks)))
    pending = [t.name for t in tasks if t.status is not TaskStatus.COMPLETED]
    action.current_task = pending[0] if pending else None
    session.flush()


def fail_task(session: Session, action_id: int, name: str, reason: str) -> None:
    """Record why a task failed (the clean-up that follows is recorded by the procedure's conclusion)."""
    repository.action(session, action_id, lock=True)
    for task in repository.tasks(session, action_id):
        if task.name == name:
            task.status, task.finished_at, task.detail = TaskStatus.FAILED, clock.now(), reason[:2000]
    session.flush()


def running_actions(session: Session) -> list[tuple[int, str, str]]:
    """(id, command, workflow id) of the actions not finished, which the worker's sweep makes sure run."""
    return repository.running(session)


def node_of(session: Session, action_id: int) -> int:
    """The node a node's action works on; NotFound for an unknown action, RuntimeError for an instance's."""
    found = repository.action(session, action_id)
    if found is None:
        raise NotFound("action", action_id)
    if found.node_id is None:
        raise RuntimeError(f"action {action_id} works on an instance, not a node")
    return found.node_id


def params_of(session: Session, action_id: int) -> dict[str, Any]:
    """What an action's tasks were told, and have noted since; NotFound for an unknown action."""
    found = repository.action(session, action_id)
    if found is None:
        raise NotFound("action", action_id)
    return dict(found.params or {})


def note(session: Session, action_id: int, **values: Any) -> None:
    """Keep values in an action's params for its later tasks (a resumed workflow reads them again)."""
    found = repository.action(session, action_id, lock=True)
    if found is None:
        raise NotFound("action", action_id)
    found.params = {**(found.params or {}), **values}
    session.flush()


def failures_since(session: Session, since: datetime, *, instance_ids: Iterable[int] = (),
                   node_ids: Iterable[int] = ()) -> list[ActionFailure]:
    """The actions on these instances or nodes that failed since a moment, in one statement (alert rules count
    them)."""
    return [ActionFailure(instance_id, node_id, finished_at)
            for instance_id, node_id, finished_at in repository.failed_since(session, since, instance_ids, node_ids)]
