"""The durable runner: an action is a DBOS workflow whose steps are its procedure's tasks, then its conclusion.

A step records its task as started, does its work, and records it as completed with what it found. DBOS
keeps each finished step's result, so a worker that crashes mid-action resumes at the step it was in;
every task is idempotent. A task that fails for good (GuestFailed, an error that outlasts its retries, or
its deadline) ends the action through the procedure's conclusion, which does the clean-up.

Every task has a deadline (declared with it, scaled by action_deadline_scale): the task runs in a thread
of its own and the step stops waiting for it at the deadline. The conclusion is retried, with a growing
pause, until it is recorded, so no action stays `running` because its end could not be written.

The workflow id is the action's, so starting one is idempotent: the after-commit hook (in a process
running a worker) and the sweep (for actions queued by a process without one) may both start it. The
DBOS names keep their "cloudlet.instances." prefix so that workflows recorded before the engine moved
here are still recovered.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import structlog
from dbos import DBOS, DBOSClient, SetWorkflowID

from cloudlet import worker
from cloudlet.actions import registry, service
from cloudlet.actions.deadlines import DeadlineExceeded, within
from cloudlet.config import Settings
from cloudlet.drivers.base import GuestFailed
from cloudlet.kit.db import Database
from cloudlet.kit.errors import NotFound
from cloudlet.nodes.service import Drivers

log = structlog.get_logger(__name__)

# the sweep's queue (actions themselves start at once, see start): polled once a second, as the others
QUEUE = worker.QueueSpec("cloudlet-instances")
# a conclusion that could not be recorded is tried again after this pause, doubled each time up to the cap
CONCLUDE_RETRY_FIRST_SECONDS = 1.0
CONCLUDE_RETRY_MAX_SECONDS = 60.0
GONE = "the action no longer exists"  # a task's outcome when its action went with what it worked on

# How a task gets at what its action works on: (database, settings, node drivers, action id, bound on each node
# call or None).
WorkFactory = Callable[[Database, Settings, Drivers, int, float | None], Any]
_work_factory: list[WorkFactory] = []


def use_work(factory: WorkFactory) -> None:
    """Choose how tasks and conclusions get their work (app.py does, once)."""
    _work_factory[:] = [factory]


def work_for(procedure: registry.Procedure[Any], db: Database, settings: Settings, drivers: Drivers, action_id: int,
             call_seconds: float | None = None) -> Any:
    """The work of an action of procedure, made by the procedure's factory or else the chosen one."""
    if procedure.work is not None:
        return procedure.work(db, settings, drivers, action_id, call_seconds)
    if not _work_factory:
        raise RuntimeError("no work factory is chosen (app.register_procedures)")
    return _work_factory[0](db, settings, drivers, action_id, call_seconds)


def _work(procedure: registry.Procedure[Any], action_id: int, *, ending: bool = False) -> Any:
    running = worker.current()
    return work_for(procedure, running.db, running.settings, running.drivers, action_id,
                    running.settings.action_cleanup_call_seconds if ending else None)


# When each running task began (monotonic), so the retries of a step share its deadline rather than
# each getting a new one. A task resumed after a crash starts afresh: its deadline counts from then.
_began: dict[tuple[int, str], float] = {}
_began_lock = threading.Lock()


def deadline_reason(name: str, seconds: float) -> str:
    """What an action records when a task passed its deadline."""
    return f"deadline: task {name} did not finish within {seconds:g} s"


def _forget(action_id: int, name: str) -> None:
    with _began_lock:
        _began.pop((action_id, name), None)


# Infrastructure trouble (the node did not answer, the database blinked) is retried; GuestFailed is not,
# nor is a task past its deadline.
@DBOS.step(name="cloudlet.instances.task", retries_allowed=True, max_attempts=4, interval_seconds=2.0,
           backoff_rate=2.0)
def run_task(action_id: int, name: str) -> str | None:
    """One task: None when it is done, else why it failed for good."""
    try:
        work = _work(registry.procedure_of_task(name), action_id)
    except NotFound:  # gone with what it worked on (a deleted node takes its actions along)
        return GONE
    step = registry.task_named(name)
    limit = step.deadline.for_settings(work.settings)
    with _began_lock:
        began = _began.setdefault((action_id, name), time.monotonic())
    with work.db.session() as session:
        service.start_task(session, action_id, name)
    try:
        detail = within(limit - (time.monotonic() - began), lambda: step.body(work), name=f"cloudlet-task-{name}")
    except DeadlineExceeded:
        _forget(action_id, name)
        log.warning("task past its deadline", action_id=action_id, task=name, seconds=limit)
        return deadline_reason(name, limit)
    except GuestFailed as failure:
        _forget(action_id, name)
        return failure.reason
    _forget(action_id, name)
    with work.db.session() as session:
        service.complete_task(session, action_id, name, detail)
    log.info("task done", action_id=action_id, task=name, detail=detail)
    return None


@DBOS.step(name="cloudlet.instances.conclude")
def conclude(action_id: int, command: str, task: str | None, reason: str | None) -> None:
    """End the action: its last task on success, its clean-up after a failed task."""
    procedure = registry.procedure_of(command)
    try:
        work = _work(procedure, action_id, ending=True)
    except NotFound:
        log.info("action gone before its end was recorded", action_id=action_id, command=command)
        return
    procedure.conclude(work, task, reason)


def concluded(action_id: int, command: str, task: str | None, reason: str | None) -> None:
    """Conclude, trying again with a growing pause until the end is recorded (never left `running`).

    Each try is a step of its own, so a recovered workflow replays the failed tries and goes on from there.
    A cancellation (an operator ended the action) is a BaseException and passes through.
    """
    pause = CONCLUDE_RETRY_FIRST_SECONDS
    while True:
        try:
            conclude(action_id, command, task, reason)
            return
        except Exception as error:
            log.warning("action conclusion not recorded; trying again", action_id=action_id, pause=pause,
                        error=f"{type(error).__name__}: {error}")
        DBOS.sleep(pause)
        pause = min(pause * 2, CONCLUDE_RETRY_MAX_SECONDS)


def _attempt(action_id: int, task: str) -> str | None:
    try:
        return run_task(action_id, task)
    except Exception as error:  # retries exhausted: the action ends here
        _forget(action_id, task)
        return f"{type(error).__name__}: {error}"


@DBOS.workflow(name="cloudlet.instances.run")
def run(action_id: int, command: str) -> None:
    """Carry out an action task by task; the first task that fails for good ends it with its clean-up."""
    for step in registry.procedure_of(command).tasks:
        reason = _attempt(action_id, step.name)
        if reason is not None:
            concluded(action_id, command, step.name, reason)
            return
    concluded(action_id, command, None, None)


def start(queued: Iterable[tuple[int, str, str]]) -> None:
    """Start the workflows of these (id, command, workflow id) actions in this process's worker, at once rather
    than at the queue's next poll (each at most once, whoever asks: a workflow id that exists is left alone)."""
    for action_id, command, workflow_id in queued:
        with SetWorkflowID(workflow_id):
            DBOS.start_workflow(run, action_id, command)


def cancel(settings: Settings, workflow_id: str) -> None:
    """Cancel a workflow: through this process's DBOS when it runs a worker, else through the system database."""
    try:
        worker.current()
    except RuntimeError:
        client = DBOSClient(system_database_url=worker.system_database_url(settings))
        try:
            client.cancel_workflow(workflow_id)
        finally:
            client.destroy()
        return
    DBOS.cancel_workflow(workflow_id)


worker.start_after_commit(service.STARTED_KEY, start, "action")
