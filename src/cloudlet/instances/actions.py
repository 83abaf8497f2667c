"""What actions need to know of instances: whose instance, what its state allows, where its guest lives.

The action's life itself (begin, tasks, finish) is the engine's (actions/service.py); an instance is the
holder it locks. Here are the instance sides of it: the instance row locked with its action, an action
forced to an end with its instance's status, and an action as the instance surfaces read it.
"""

from __future__ import annotations

from pydantic import BaseModel
from sqlalchemy.orm import Session

from cloudlet.actions import service as engine
from cloudlet.images import service as images
from cloudlet.images.models import ImageCapability
from cloudlet.instances import repository
from cloudlet.instances.models import Action, ActionStatus, Instance, InstanceStatus
from cloudlet.instances.schemas import ActionRead, Allowed, TaskRead
from cloudlet.kit.errors import Conflict, Forbidden, NotFound
from cloudlet.kit.ids import id_or_key
from cloudlet.nodes import service as nodes
from cloudlet.projects import service as projects
from cloudlet.projects.schemas import Actor, Permission

# --- whose instance ---------------------------------------------------------------------------


def projects_in_reach(session: Session, actor: Actor, project_id: int | None = None) -> list[int]:
    return projects.in_reach(session, actor, project_id)


def instance_of(session: Session, actor: Actor, ident: int | str, *, lock: bool = False,
                 include_deleted: bool = False) -> Instance:
    found = repository.instance(session, parse_ident(ident), lock=lock)
    if found is None or found.project_id not in projects_in_reach(session, actor):
        raise NotFound("instance", ident, code="VPS_NOT_FOUND")
    if found.status is InstanceStatus.DELETED and not include_deleted:
        raise NotFound("instance", ident, code="VPS_NOT_FOUND")
    return found


def parse_ident(ident: int | str) -> int | str:
    """An instance id (a number out of bound names none) or its uuid; kit.ids parses ids for every domain."""
    return id_or_key(ident)


def require_billing_right(session: Session, actor: Actor, project_id: int) -> None:
    if not projects.can(session, project_id, actor.user.id, Permission.INSTANCES_BILLING):
        raise Forbidden("Only project owners and members allowed billing actions can create, upgrade, delete "
                        "or reactivate instances.", code="FORBIDDEN")


def instance_row(session: Session, instance_id: int, *, lock: bool = False) -> Instance:
    row = repository.instance(session, instance_id, lock=lock)
    if row is None:
        raise NotFound("instance", instance_id)
    return row


# --- what the state allows ------------------------------------------------------------------------

_WHILE_RUNNING = (Allowed.SHUTDOWN, Allowed.RESTART, Allowed.POWEROFF, Allowed.REINSTALL, Allowed.UPGRADE,
                  Allowed.RESET_PASSWORD, Allowed.CONSOLE, Allowed.SNAPSHOT, Allowed.BACKUP, Allowed.DELETE)
_WHILE_STOPPED = (Allowed.BOOT, Allowed.REINSTALL, Allowed.UPGRADE, Allowed.RESET_PASSWORD, Allowed.SNAPSHOT,
                  Allowed.BACKUP, Allowed.DELETE)
_BY_STATUS: dict[InstanceStatus, tuple[Allowed, ...]] = {
    InstanceStatus.RUNNING: _WHILE_RUNNING,
    InstanceStatus.STOPPED: _WHILE_STOPPED,
    InstanceStatus.SUSPENDED: (Allowed.REACTIVATE, Allowed.DELETE),
    InstanceStatus.ERROR: (Allowed.DELETE,),
    InstanceStatus.UNKNOWN: (Allowed.DELETE,),
}


def allowed(row: Instance) -> list[Allowed]:
    """What the instance's state allows now: nothing while an action holds it."""
    if row.locked_action_id is not None:
        return []
    found = list(_BY_STATUS.get(row.status, ()))
    if row.delete_at is not None and row.status is not InstanceStatus.DELETED:
        found.append(Allowed.CANCEL_DELETION)
    return found


def require_allowed(row: Instance, wanted: Allowed) -> None:
    """Refuse what the state does not allow: 409 while busy or in the wrong state, 403 while suspended."""
    if row.locked_action_id is not None:
        raise Conflict("Another action is in progress on this instance; wait until it finishes.",
                       code="INSTANCE_BUSY")
    if wanted in allowed(row):
        return
    if row.status is InstanceStatus.SUSPENDED:
        raise Forbidden("The instance is suspended for an unpaid renewal; reactivate it first.",
                        code="VPS_SUSPENDED")
    raise Conflict(f"The instance is {row.status.value}; it cannot {wanted.value.replace('_', ' ')} now.",
                   code="INVALID_STATE")


# --- the instance side of an action ----------------------------------------------------------------


def locked(session: Session, action_id: int) -> tuple[Action, Instance]:
    """The action and the instance it works on, both rows locked for the transaction."""
    action = engine.locked_action(session, action_id)
    return action, instance_row(session, _instance_id(action), lock=True)


def _instance_id(action: Action) -> int:
    if action.instance_id is None:
        raise RuntimeError(f"action {action.id} works on a node, not an instance")
    return action.instance_id


def end(action: Action, row: Instance, reason: str | None, *, failed: str | None = None) -> None:
    """End the action and free its instance: a success clears the instance's reason; a failure records
    its reason, on the instance as "<failed> failed: <reason>" (or the reason alone without `failed`)."""
    if reason is None:
        engine.finish(action, row, ActionStatus.SUCCESS)
        row.status_reason = ""
    else:
        engine.finish(action, row, ActionStatus.ERROR, reason[:4000])
        row.status_reason = (f"{failed} failed: {reason}" if failed else reason)[:2000]


_TRANSITIONAL = {InstanceStatus.PROVISIONING, InstanceStatus.STARTING, InstanceStatus.STOPPING,
                 InstanceStatus.RESTARTING, InstanceStatus.DELETING}


def force_fail(session: Session, action_id: int, reason: str) -> Action:
    """Record an action as failed and free its instance, whatever its procedure managed to record.

    An instance left in a transitional status shows error (with the reason), which allows deleting it.
    """
    action = engine.locked_action(session, action_id)
    if action.instance_id is None:  # a node's action holds nothing
        if action.status is ActionStatus.RUNNING:
            engine.finish(action, None, ActionStatus.ERROR, reason[:4000])
        session.flush()
        return action
    row = instance_row(session, action.instance_id, lock=True)
    if action.status is ActionStatus.RUNNING:
        if row.status in _TRANSITIONAL:
            end(action, row, reason, failed=action.command)
            row.status = InstanceStatus.ERROR
        else:  # a stable status keeps the reason it has
            engine.finish(action, row, ActionStatus.ERROR, reason[:4000])
    elif row.locked_action_id == action.id:
        row.locked_action_id = None
    session.flush()
    return action


def action_read(session: Session, action: Action) -> ActionRead:
    """An action with its tasks."""
    tasks = [TaskRead(name=t.name, order=t.position, status=t.status, detail=t.detail, started_at=t.started_at,
                      finished_at=t.finished_at) for t in repository.tasks(session, action.id)]
    return ActionRead(id=action.id, command=action.command, status=action.status, progress=action.progress,
                      current_task=action.current_task, error=action.error, started_at=action.started_at,
                      finished_at=action.finished_at, tasks=tasks)


class Target(BaseModel):
    """Where an action's guest lives (the node's URI and the guest's name there) and what its image can do."""

    instance_id: int
    guest_name: str
    node_uri: str | None
    node_name: str | None
    capabilities: frozenset[ImageCapability] = frozenset()  # none when the image is no longer registered


def target_of(session: Session, action_id: int) -> Target:
    """The node and guest an action works on."""
    action = repository.action(session, action_id)
    if action is None:
        raise NotFound("action", action_id)
    row = instance_row(session, _instance_id(action))
    node = nodes.get_node(session, row.node_id) if row.node_id is not None else None
    return Target(instance_id=row.id, guest_name=row.guest_name, node_uri=node.uri if node else None,
                  node_name=node.name if node else None, capabilities=image_capabilities(session, row))


def image_capabilities(session: Session, row: Instance) -> frozenset[ImageCapability]:
    """What the instance's image can do; nothing when the image is no longer registered."""
    try:
        return frozenset(images.get_image(session, row.image).capabilities)
    except NotFound:
        return frozenset()
