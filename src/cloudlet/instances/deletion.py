"""The delete procedure: deleting now (the unused part refunded) or at the end of the paid cycle, the tasks
that remove the guest and give back what it held, and how a deletion ends.

    delete  stop_vm, destroy_vm, release_ip, release_capacity, finalize

An end_of_cycle deletion only cancels the renewal; the instance sweep (workflows.py) opens its delete action
once billed_till has come. A delete whose node does not answer leaves the instance in error, to be deleted
again. What the instance's backups leave is removed by the backups sweep (copies.py), never by a deletion.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from cloudlet.actions import service as engine
from cloudlet.actions.registry import Procedure, task
from cloudlet.billing import service as billing
from cloudlet.billing.schemas import SubscriptionRead
from cloudlet.instances import actions, queries, repository, service
from cloudlet.instances.models import ActionStatus, Instance, InstanceStatus
from cloudlet.instances.schemas import DELETE_TASKS, ActionRead, Command, DeletionMode, DeletionRead, InstanceRead
from cloudlet.instances.work import Work, stop_vm
from cloudlet.kit import clock
from cloudlet.kit.errors import Conflict
from cloudlet.projects.schemas import Actor

# --- the requests --------------------------------------------------------------------------------


def delete_instance(session: Session, actor: Actor, ident: int | str, mode: DeletionMode) -> DeletionRead:
    """Delete now (refund the unused part, remove the guest) or at the end of the paid cycle."""
    row = actions.instance_of(session, actor, ident, lock=True)
    actions.require_billing_right(session, actor, row.project_id)
    if row.status is InstanceStatus.DELETING:
        raise Conflict("The instance is already being deleted.", code="VPS_ALREADY_DELETED")
    sub = billing.subscription_for(session, row.uuid)
    currency = billing.wallet_currency(session, row.project_id)
    if mode is DeletionMode.END_OF_CYCLE:
        if sub is None or sub.status.value == "ended":
            raise Conflict("The instance has no running billing cycle; delete it immediately.", code="NO_CYCLE")
        billing.set_cancel_at_period_end(session, sub.id, True)
        row.delete_at = sub.billed_till
        session.flush()
        return DeletionRead(instance=queries.instance_read(session, row.id), mode=mode, refund_cents=0,
                            currency=currency, delete_at=row.delete_at)
    refund = _terminate(session, sub)
    begin_delete(session, row)
    return DeletionRead(instance=queries.instance_read(session, row.id), mode=mode, refund_cents=refund,
                        currency=currency, delete_at=None)


def _terminate(session: Session, sub: SubscriptionRead | None) -> int:
    if sub is None or sub.status.value == "ended":
        return 0
    return -billing.terminate_subscription(session, sub.id).amount_cents


def begin_delete(session: Session, row: Instance) -> ActionRead:
    """Queue the removal of a locked instance's guest, disk, address and capacity."""
    action = engine.begin(session, row, Command.DELETE, DELETE_TASKS)
    row.status, row.status_reason = InstanceStatus.DELETING, ""
    session.flush()
    return actions.action_read(session, action)


def cancel_deletion(session: Session, actor: Actor, ident: int | str) -> InstanceRead:
    """Undo an end_of_cycle deletion: the renewal runs again."""
    row = actions.instance_of(session, actor, ident, lock=True)
    actions.require_billing_right(session, actor, row.project_id)
    if row.delete_at is None:
        raise Conflict("No deletion is scheduled for this instance.", code="NO_DELETION_SCHEDULED")
    sub = billing.subscription_for(session, row.uuid)
    if sub is not None:
        billing.set_cancel_at_period_end(session, sub.id, False)
    row.delete_at = None
    session.flush()
    return queries.instance_read(session, row.id)


def delete_due(session: Session, now: datetime | None = None) -> list[str]:
    """Start the deletion of every instance whose end_of_cycle time has come; their uuids."""
    started = []
    for instance_id in repository.due_deletions(session, now or clock.now()):
        row = repository.instance(session, instance_id, lock=True)
        if row is None or row.locked_action_id is not None or row.delete_at is None:
            continue
        _terminate(session, billing.subscription_for(session, row.uuid))  # at billed_till nothing is left to refund
        begin_delete(session, row)
        started.append(row.uuid)
    return started



# --- the tasks -------------------------------------------------------------------------------------


@task(600)
def destroy_vm(work: Work) -> str:
    """The guest, its disk, its seed and its console log are gone."""
    driver, name = work.driver()
    driver.destroy_guest(name)
    return f"guest {name} removed from node {work.target().node_name}"


@task(120)
def release_ip(work: Work) -> str:
    """The addresses are free again."""
    with work.db.session() as session:
        return service.release_addresses(session, work.target().instance_id)


@task(120)
def release_capacity(work: Work) -> str:
    """The node's room is given back."""
    with work.db.session() as session:
        return service.release_capacity(session, work.target().instance_id)



# --- how a deletion ends -----------------------------------------------------------------------------


def finish_delete(session: Session, action_id: int) -> None:
    """The last task of a delete: the guest, its disk, its address and its room are gone."""
    action, row = actions.locked(session, action_id)
    if action.status is not ActionStatus.RUNNING:
        return
    engine.complete_task(session, action_id, "finalize")
    actions.end(action, row, None)
    row.status, row.deleted_at, row.delete_at = InstanceStatus.DELETED, clock.now(), None
    row.root_password = row.webhook_secret = None
    session.flush()


def fail_delete(session: Session, action_id: int, reason: str) -> None:
    """A delete that could not finish (the node did not answer): the instance shows error, to be deleted again."""
    action, row = actions.locked(session, action_id)
    if action.status is not ActionStatus.RUNNING:
        return
    actions.end(action, row, reason, failed="deletion")
    row.status = InstanceStatus.ERROR
    session.flush()


def conclude_delete(work: Work, task: str | None, reason: str | None) -> None:
    """Success: the server is gone. Failure: the instance shows error and can be deleted again."""
    with work.db.session() as session:
        if task is None or reason is None:
            finish_delete(session, work.action_id)
            return
        engine.fail_task(session, work.action_id, task, reason)
        fail_delete(session, work.action_id, reason)


DELETE = Procedure(Command.DELETE.value, DELETE_TASKS, (stop_vm, destroy_vm, release_ip, release_capacity),
                   conclude_delete)

PROCEDURES = (DELETE,)  # registered by app.py
