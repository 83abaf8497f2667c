"""Power: boot, shutdown, restart and power-off of an instance, each an Action run by the instance workflow.

The request checks what the state allows (409 while another action holds the instance or in the
wrong state, 403 while it is suspended), opens the action and shows the transitional status
(starting, stopping, restarting). The worker then carries out the tasks:

    boot      boot_guest, wait_for_boot, sync_status
    shutdown  shut_down_guest, sync_status         (ACPI; power cut after instance_shutdown_timeout_seconds)
    restart   reboot_guest, wait_for_boot, sync_status
    poweroff  power_off_guest, sync_status

and the conclusion (sync_status) reads the guest's power state from its node and makes it the
instance's status, whether the tasks succeeded or not: once an action ends the status says what the
node says ("unknown" when the node does not answer, until the reconciler hears from it again).

Boot and restart end only once the guest is back: the node empties the guest's console log at each
start and before each ACPI reboot, and the image prints its CLOUDLET_READY line on every boot, so the
line waited for is this boot's, not the last one's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from pydantic import BaseModel
from sqlalchemy.orm import Session

from cloudlet.actions import service as engine
from cloudlet.actions.registry import Procedure, task
from cloudlet.drivers.base import DriverError, GuestNotFound, GuestState
from cloudlet.instances import actions, repository, service
from cloudlet.instances.models import ActionStatus, InstanceStatus
from cloudlet.instances.schemas import ActionRead, Allowed, Command, InstanceRead
from cloudlet.instances.work import READY_WAIT, SHUTDOWN_WAIT, Work
from cloudlet.kit.db import Database
from cloudlet.kit.errors import Invalid, NotFound
from cloudlet.projects.schemas import Actor

SYNC_TASK = "sync_status"
BOOT_TASKS = ("boot_guest", "wait_for_boot", SYNC_TASK)
SHUTDOWN_TASKS = ("shut_down_guest", SYNC_TASK)
RESTART_TASKS = ("reboot_guest", "wait_for_boot", SYNC_TASK)
POWEROFF_TASKS = ("power_off_guest", SYNC_TASK)
SETTLE_POLL_SECONDS = 0.2


@dataclass(frozen=True)
class PowerCommand:
    """What one power command needs of the state, shows while it runs, and should leave behind."""

    allowed: Allowed
    transitional: InstanceStatus
    outcome: InstanceStatus
    tasks: tuple[str, ...]


COMMANDS: dict[Command, PowerCommand] = {
    Command.BOOT: PowerCommand(Allowed.BOOT, InstanceStatus.STARTING, InstanceStatus.RUNNING, BOOT_TASKS),
    Command.SHUTDOWN: PowerCommand(Allowed.SHUTDOWN, InstanceStatus.STOPPING, InstanceStatus.STOPPED, SHUTDOWN_TASKS),
    Command.RESTART: PowerCommand(Allowed.RESTART, InstanceStatus.RESTARTING, InstanceStatus.RUNNING, RESTART_TASKS),
    Command.POWEROFF: PowerCommand(Allowed.POWEROFF, InstanceStatus.STOPPING, InstanceStatus.STOPPED, POWEROFF_TASKS),
}


class PowerRead(BaseModel):
    """An instance and the power action opened on it (or the state both are in once it settled)."""

    instance: InstanceRead
    action: ActionRead


# --- the request ---------------------------------------------------------------------------------


def request_power(session: Session, actor: Actor, ident: int | str, command: Command) -> PowerRead:
    """Open a power action on the instance and show its transitional status; the worker carries it out."""
    wanted = COMMANDS.get(command)
    if wanted is None:
        raise Invalid("action", f"{command.value} is not a power action.")
    row = actions.instance_of(session, actor, ident, lock=True)
    actions.require_allowed(row, wanted.allowed)
    action = engine.begin(session, row, command, wanted.tasks)
    row.status, row.status_reason = wanted.transitional, ""
    session.flush()
    return PowerRead(instance=service.get_instance(session, actor, row.id), action=actions.action_read(session, action))


def settle(db: Database, actor: Actor, started: PowerRead, timeout: float) -> PowerRead:
    """Wait up to timeout seconds for a power action to end; the instance and the action as they are then.

    Reads in short read-only transactions of its own: call it once the transaction that opened the
    action has committed (before that, the workflow has not started, and on SQLite it could not write).
    """
    deadline = time.monotonic() + timeout
    while True:
        with db.session(write=False) as session:
            action = repository.action(session, started.action.id)
            if action is None:
                raise NotFound("action", started.action.id)
            if action.status is not ActionStatus.RUNNING or time.monotonic() >= deadline:
                return PowerRead(instance=service.get_instance(session, actor, started.instance.id),
                                 action=actions.action_read(session, action))
        time.sleep(SETTLE_POLL_SECONDS)


# --- the tasks -----------------------------------------------------------------------------------


@task(120)
def boot_guest(work: Work) -> str:
    """The guest is powered on (its console log starts afresh)."""
    driver, name = work.driver()
    driver.start(name)
    return f"guest {name} powered on"


@task(60, waits=READY_WAIT)
def wait_for_boot(work: Work) -> str:
    """The guest prints, on the console log of this boot, that it is up with its seed applied."""
    driver, name = work.driver()
    ready = driver.wait_ready(name, work.settings.instance_ready_timeout_seconds)
    return f"guest {name} is up: hostname={ready.hostname} address={ready.address}"


@task(60, waits=SHUTDOWN_WAIT)
def shut_down_guest(work: Work) -> str:
    """The guest is off: shut down from inside (ACPI), or its power cut when it did not stop in time."""
    driver, name = work.driver()
    timeout = work.settings.instance_shutdown_timeout_seconds
    began = time.monotonic()
    driver.shutdown(name, timeout)
    took = time.monotonic() - began
    # the driver cuts the power only once the timeout has passed, so a quicker return is the guest's own doing
    if took >= timeout:
        return f"guest {name} did not shut down within {timeout:g} s; its power was cut"
    return f"guest {name} shut down in {took:.1f} s"


@task(120)
def reboot_guest(work: Work) -> str:
    """The guest is asked to restart (ACPI); its console log starts afresh."""
    driver, name = work.driver()
    driver.reboot(name)
    return f"guest {name} asked to restart"


@task(120)
def power_off_guest(work: Work) -> str:
    """The guest's power is cut at once."""
    driver, name = work.driver()
    driver.poweroff(name)
    return f"guest {name} powered off"


# --- how a power action ends -----------------------------------------------------------------------


@dataclass(frozen=True)
class Observed:
    """The instance status that the node's word on the guest means, and that word."""

    status: InstanceStatus
    note: str


_BY_STATE = {
    GuestState.RUNNING: InstanceStatus.RUNNING,
    GuestState.STARTING: InstanceStatus.RUNNING,
    GuestState.PAUSED: InstanceStatus.RUNNING,  # only done behind Cloudlet's back; a shutdown ends it
    GuestState.STOPPED: InstanceStatus.STOPPED,
    GuestState.STOPPING: InstanceStatus.STOPPED,
    GuestState.CRASHED: InstanceStatus.STOPPED,  # off, and a boot may bring it back
}


def observe(work: Work) -> Observed:
    """What the guest's node says of it now, as an instance status."""
    try:
        driver, name = work.driver()
        state = driver.state(name)
    except GuestNotFound:
        return Observed(InstanceStatus.ERROR, "the guest is missing from its node")
    except DriverError as error:
        return Observed(InstanceStatus.UNKNOWN, f"the node did not answer: {error}")
    return Observed(_BY_STATE[state], f"the node says the guest is {state.value}")


def conclude_power(work: Work, task: str | None, reason: str | None) -> None:
    """Success or not, the instance's status becomes what the node says, and the action ends."""
    seen = observe(work)
    with work.db.session() as session:
        if task is not None and reason is not None:
            engine.fail_task(session, work.action_id, task, reason)
        finish_power(session, work.action_id, seen, reason)


def finish_power(session: Session, action_id: int, seen: Observed, reason: str | None) -> None:
    """Record how a power action ended (once): its status synced from the node, success or the error."""
    action, row = actions.locked(session, action_id)
    if action.status is not ActionStatus.RUNNING:
        return
    wanted = COMMANDS[Command(action.command)]
    if reason is None and seen.status is not wanted.outcome:
        reason = f"{seen.note}, not {wanted.outcome.value}"
        engine.fail_task(session, action_id, SYNC_TASK, reason)
    else:
        engine.complete_task(session, action_id, SYNC_TASK, f"{seen.note}: status {seen.status.value}")
    row.status = seen.status
    actions.end(action, row, reason, failed=action.command)
    session.flush()


PROCEDURES = (  # registered by app.py
    Procedure(Command.BOOT.value, BOOT_TASKS, (boot_guest, wait_for_boot), conclude_power),
    Procedure(Command.SHUTDOWN.value, SHUTDOWN_TASKS, (shut_down_guest,), conclude_power),
    Procedure(Command.RESTART.value, RESTART_TASKS, (reboot_guest, wait_for_boot), conclude_power),
    Procedure(Command.POWEROFF.value, POWEROFF_TASKS, (power_off_guest,), conclude_power),
)
