"""An action's tasks as the runner records them: started, completed, failed; never again once it ended.

Opening an action and ending it (begin, finish) also lock and free the thing it works on, so they live
with that thing's domain (instances/actions.py); recording a task touches only the action.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from cloudlet.actions import repository
from cloudlet.actions.models import Action, ActionStatus, TaskStatus
from cloudlet.kit import clock
from cloudlet.kit.errors import NotFound

STARTED_KEY = "cloudlet_instances_started"  # session.info: (action id, command, workflow id) to start after commit


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
