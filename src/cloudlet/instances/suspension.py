"""Suspension and reactivation: an unpaid server is powered off with its data kept, and a paid one boots again.

    suspend     stop_vm, finalize
    reactivate  start_vm, wait_for_guest_agent, finalize

The instance sweep (workflows.py) opens a suspend action for every instance whose renewal the billing
engine suspended; reactivation is a request that pays a cycle from now and opens the boot.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from cloudlet.actions import service as engine
from cloudlet.actions.registry import Procedure
from cloudlet.billing import service as billing
from cloudlet.instances import actions, queries, repository
from cloudlet.instances.models import ActionStatus, Instance, InstanceStatus
from cloudlet.instances.schemas import REACTIVATE_TASKS, SUSPEND_TASKS, Allowed, Command, ReactivationRead
from cloudlet.instances.work import Work, start_vm, stop_vm, wait_for_guest_agent
from cloudlet.kit.errors import Conflict
from cloudlet.projects.schemas import Actor

# --- suspension ----------------------------------------------------------------------------------


def suspend_unpaid(session: Session) -> list[str]:
    """Start suspending (powering off, data kept) every instance whose renewal the billing engine suspended."""
    started = []
    for instance_id in repository.to_suspend(session, billing.suspended_references(session)):
        row = actions.instance_row(session, instance_id, lock=True)
        if row.locked_action_id is not None:
            continue
        engine.begin(session, row, Command.SUSPEND, SUSPEND_TASKS)
        started.append(row.uuid)
    return started


def finish_suspend(session: Session, action_id: int, reason: str | None = None) -> None:
    """The guest is off (or could not be reached): the instance is suspended either way, since it is unpaid."""
    row = _ended(session, action_id, reason)
    if row is None:
        return
    row.status = InstanceStatus.SUSPENDED
    row.status_reason = "suspended: the renewal could not be paid" + (f" ({reason})" if reason else "")
    session.flush()


def conclude_suspend(work: Work, task: str | None, reason: str | None) -> None:
    """The unpaid server is suspended, off if its node answered."""
    _conclude(work, task, reason, finish_suspend)



# --- reactivation --------------------------------------------------------------------------------


def reactivate_instance(session: Session, actor: Actor, ident: int | str) -> ReactivationRead:
    """Pay a cycle from now (402 when the wallet cannot) and boot the suspended server again."""
    row = actions.instance_of(session, actor, ident, lock=True)
    actions.require_billing_right(session, actor, row.project_id)
    actions.require_allowed(row, Allowed.REACTIVATE)
    sub = billing.subscription_for(session, row.uuid)
    if sub is None:
        raise Conflict("The instance has no subscription to reactivate.", code="NO_CYCLE")
    charge = billing.reactivate(session, sub.id)
    action = engine.begin(session, row, Command.REACTIVATE, REACTIVATE_TASKS)
    row.status, row.status_reason = InstanceStatus.STARTING, ""
    session.flush()
    return ReactivationRead(instance=queries.instance_read(session, row.id),
                            action=actions.action_read(session, action), charged_cents=charge.amount_cents)


def finish_reactivate(session: Session, action_id: int, reason: str | None = None) -> None:
    """The server runs again (or failed to boot: it shows error, paid, to be restarted or reinstalled)."""
    row = _ended(session, action_id, reason)
    if row is None:
        return
    row.status = InstanceStatus.RUNNING if reason is None else InstanceStatus.ERROR
    row.status_reason = "" if reason is None else f"reactivation failed: {reason}"[:2000]
    session.flush()


def conclude_reactivate(work: Work, task: str | None, reason: str | None) -> None:
    """The paid server runs again, or shows why it did not boot."""
    _conclude(work, task, reason, finish_reactivate)


# --- how both end ----------------------------------------------------------------------------------


def _ended(session: Session, action_id: int, reason: str | None) -> Instance | None:
    """Record the action's end (its last task done when there is no reason, else failed with it) and give its
    instance for its new status; None when the action had ended already (an operator, say)."""
    action, row = actions.locked(session, action_id)
    if action.status is not ActionStatus.RUNNING:
        return None
    if reason is None:
        engine.complete_task(session, action_id, "finalize")
    actions.end(action, row, reason)
    return row


def _conclude(work: Work, task: str | None, reason: str | None,
              finish: Callable[[Session, int, str | None], None]) -> None:
    with work.db.session() as session:
        if task is not None and reason is not None:
            engine.fail_task(session, work.action_id, task, reason)
        finish(session, work.action_id, reason)


SUSPEND = Procedure(Command.SUSPEND.value, SUSPEND_TASKS, (stop_vm,), conclude_suspend)


REACTIVATE = Procedure(Command.REACTIVATE.value, REACTIVATE_TASKS, (start_vm, wait_for_guest_agent),
                       conclude_reactivate)

PROCEDURES = (SUSPEND, REACTIVATE)  # registered by app.py
