"""The instances' schedules and operators' tools: the sweep (end_of_cycle deletions and suspensions of
unpaid servers are opened, and every running action has its workflow), the reconciler, and how an operator
ends a stale action through its procedure's own clean-up.

The procedures themselves have a file each (build.py, deletion.py, suspension.py, power.py, rebuild.py,
copies.py); what their tasks work with is work.py, and the engine that runs them is actions/runner.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog
from dbos import DBOS
from sqlalchemy.orm import Session

from cloudlet import worker
from cloudlet.actions import registry, runner
from cloudlet.actions import service as engine
from cloudlet.actions.runner import start
from cloudlet.actions.schemas import ActionSummary
from cloudlet.config import Settings
from cloudlet.instances import actions, deletion, reconcile, repository, suspension
from cloudlet.instances.models import Action, ActionStatus
from cloudlet.kit.db import Database
from cloudlet.kit.errors import Conflict, NotFound
from cloudlet.nodes import service as nodes

log = structlog.get_logger(__name__)

QUEUE = runner.QUEUE
SWEEP_NAME = "cloudlet-instances-sweep"
RECONCILE_NAME = "cloudlet-instances-reconcile"


# --- the sweep -----------------------------------------------------------------------------------


@DBOS.step(name="cloudlet.instances.due", retries_allowed=True, max_attempts=3)
def due() -> list[tuple[int, str, str]]:
    """Start end_of_cycle deletions whose time has come and suspensions of unpaid servers; then every running action."""
    running = worker.current()
    with running.db.session() as session:
        deletion.delete_due(session)
    with running.db.session() as session:
        suspension.suspend_unpaid(session)
    with running.db.session(write=False) as session:
        return engine.running_actions(session)


@DBOS.workflow(name="cloudlet.instances.sweep")
def sweep(scheduled_at: datetime, _context: Any) -> None:
    """Make sure every running action has its workflow (starting one that has is a no-op)."""
    found = due()
    start(found)
    if found:
        log.debug("instance sweep", scheduled_at=scheduled_at.isoformat(), running=len(found))


# --- operators end stale actions ------------------------------------------------------------------


def _summary(action: Action, instance_uuid: str | None) -> ActionSummary:
    return ActionSummary(id=action.id, instance_id=action.instance_id, instance_uuid=instance_uuid,
                         node_id=action.node_id, command=action.command, status=action.status.value,
                         progress=action.progress, current_task=action.current_task, error=action.error,
                         workflow_id=action.workflow_id, started_at=action.started_at,
                         finished_at=action.finished_at)


def list_actions(session: Session, *, running_only: bool, limit: int = 100) -> list[ActionSummary]:
    """Actions newest first, for operators (only the unfinished ones when asked)."""
    return [_summary(action, uuid) for action, uuid in
            repository.recent_actions(session, running_only=running_only, limit=limit)]


def endable(session: Session, action_id: int) -> ActionSummary:
    """An action an operator may end: NotFound for an unknown one, Conflict for one that has already ended."""
    action = repository.action(session, action_id)
    if action is None:
        raise NotFound("action", action_id)
    if action.status is not ActionStatus.RUNNING:
        raise Conflict(f"Action {action_id} has already ended ({action.status.value}).", code="ACTION_ENDED")
    return _summary(action, _uuid_of(session, action))


def _uuid_of(session: Session, action: Action) -> str | None:
    return None if action.instance_id is None else actions.instance_row(session, action.instance_id).uuid


def end_later(db: Database, settings: Settings, drivers: nodes.Drivers, action_id: int, reason: str = "") -> None:
    """end_stale, run once the request that asked for it has answered (one that ended meanwhile is left)."""
    try:
        end_stale(db, settings, drivers, action_id, reason)
    except (Conflict, NotFound) as error:
        log.info("action not ended: it ended meanwhile", action_id=action_id, reason=error.message)


def end_stale(db: Database, settings: Settings, drivers: nodes.Drivers, action_id: int,
              reason: str = "") -> ActionSummary:
    """End an unfinished action: cancel its workflow, run its procedure's clean-up, record the failure, free its
    instance. NotFound for an unknown action, Conflict for one that already ended.

    The workflow is cancelled first, so it starts no further step; a step already running finishes, but an
    ended action records nothing more. The clean-up's driver calls give up after action_cleanup_call_seconds,
    and whatever it could not record, the failure and the freed lock are recorded anyway.
    """
    with db.session(write=False) as session:
        found = endable(session, action_id)
        workflow_id, command = found.workflow_id, found.command
        names = [t.name for t in repository.tasks(session, action_id)]
        current = found.current_task or (names[-1] if names else command)
    runner.cancel(settings, workflow_id)
    why = f"ended by an operator: {reason}" if reason.strip() else "ended by an operator"
    procedure = registry.PROCEDURES.get(command)
    if procedure is not None:
        try:  # the procedure's own clean-up: a failed create frees its address and room and refunds
            work = runner.work_for(procedure, db, settings, drivers, action_id, settings.action_cleanup_call_seconds)
            procedure.conclude(work, current, why)
        except Exception as error:  # the failure and the freed lock are recorded below all the same
            log.warning("clean-up of an ended action failed", action_id=action_id,
                        error=f"{type(error).__name__}: {error}")
    with db.session() as session:
        ended = actions.force_fail(session, action_id, why)
        summary = _summary(ended, _uuid_of(session, ended))
    log.warning("action ended by an operator", action_id=action_id, command=command, reason=why)
    return summary


def reconcile_nodes(db: Database, drivers: nodes.Drivers) -> list[reconcile.NodeReport]:
    """Compare every node's guests with the database, each node asked outside any transaction."""
    with db.session(write=False) as session:
        targets = nodes.node_targets(session)
    reports = []
    for target in targets:
        seen = reconcile.look(drivers, target.uri)
        with db.session() as session:
            reports.append(reconcile.record(session, target.id, target.name, seen))
    return reports


@DBOS.step(name="cloudlet.instances.reconcile_nodes")
def reconcile_step() -> list[reconcile.NodeReport]:
    """One round of reconciliation over every node."""
    running = worker.current()
    return reconcile_nodes(running.db, running.drivers)


@DBOS.workflow(name="cloudlet.instances.reconcile")
def reconcile_run(scheduled_at: datetime, _context: Any) -> None:
    """One tick of the reconciliation schedule; logs what drifted."""
    drifted = [d for report in reconcile_step() for d in report.drifts]
    if drifted:
        log.info("reconciled", scheduled_at=scheduled_at.isoformat(),
                 drifts=[f"{d.guest}: {d.expected} -> {d.found}" for d in drifted])


def schedules(settings: Settings) -> list[worker.Schedule]:
    """The sweep and reconciliation schedules the worker applies at start."""
    return [worker.Schedule(SWEEP_NAME, sweep, settings.instance_sweep_schedule, queue=QUEUE.name),
            worker.Schedule(RECONCILE_NAME, reconcile_run, settings.instance_reconcile_schedule)]
