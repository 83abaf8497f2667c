"""The instance procedures' shared part: what a task works with (Work), the tasks of a create, delete,
suspension and reactivation with their deadlines, how those end, the sweep and the reconciler, and how an
operator ends a stale action.

The engine that runs them (DBOS workflows, deadlines, the conclusion retried until recorded) is
actions/runner.py; procedures are registered by app.py (actions/registry.py). The conclusion's own
driver calls give up after action_cleanup_call_seconds (Work.call_seconds).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import structlog
from dbos import DBOS
from sqlalchemy.orm import Session

from cloudlet import worker
from cloudlet.actions import registry, runner
from cloudlet.actions import service as engine
from cloudlet.actions.deadlines import DeadlineExceeded, SettingsReader, within
from cloudlet.actions.registry import Procedure, task
from cloudlet.actions.runner import start
from cloudlet.actions.schemas import ActionSummary
from cloudlet.config import Settings
from cloudlet.drivers.base import (
    DriverError,
    GuestFailed,
    GuestNotFound,
    GuestReady,
    GuestSpec,
    HypervisorDriver,
    NodeUnreachable,
)
from cloudlet.instances import actions, reconcile, repository, service
from cloudlet.instances.models import Action, ActionStatus
from cloudlet.instances.schemas import CREATE_TASKS, DELETE_TASKS, REACTIVATE_TASKS, SUSPEND_TASKS, Command
from cloudlet.kit.db import Database
from cloudlet.kit.errors import Conflict, NotFound
from cloudlet.nodes import service as nodes

log = structlog.get_logger(__name__)

QUEUE = runner.QUEUE
SWEEP_NAME = "cloudlet-instances-sweep"
RECONCILE_NAME = "cloudlet-instances-reconcile"
VERIFY_TIMEOUT_SECONDS = 30.0


class BoundedDriver:
    """A driver whose every call gives up after `seconds` with NodeUnreachable (the call is left running)."""

    def __init__(self, inner: HypervisorDriver, seconds: float) -> None:
        self.inner = inner
        self.seconds = seconds

    def __getattr__(self, name: str) -> Any:
        found = getattr(self.inner, name)
        if not callable(found):
            return found

        def bounded(*args: Any, **kwargs: Any) -> Any:
            try:
                return within(self.seconds, lambda: found(*args, **kwargs), name=f"cloudlet-driver-{name}")
            except DeadlineExceeded as error:
                raise NodeUnreachable(f"the node did not answer {name} within {self.seconds:g} s") from error

        return bounded


class Work:
    """What a task needs: the database, the settings, and the action it belongs to.

    With call_seconds set (how an action ends), every driver call gives up after that many seconds.
    """

    def __init__(self, db: Database, settings: Settings, action_id: int, call_seconds: float | None = None) -> None:
        self.db = db
        self.settings = settings
        self.action_id = action_id
        self.call_seconds = call_seconds

    def target(self) -> actions.Target:
        """The node and guest the action works on."""
        with self.db.session(write=False) as session:
            return actions.target_of(session, self.action_id)

    def driver(self) -> tuple[HypervisorDriver, str]:
        """The driver of the guest's node and the guest's name there."""
        target = self.target()
        if target.node_uri is None:
            raise GuestFailed("the instance has no node")
        driver = nodes.connect(target.node_uri)
        if self.call_seconds is not None:
            driver = cast(HypervisorDriver, BoundedDriver(driver, self.call_seconds))
        return driver, target.guest_name

    def spec(self) -> GuestSpec:
        """The guest as the database describes it."""
        with self.db.session(write=False) as session:
            return service.guest_spec(session, self.settings, self.target().instance_id)


# --- tasks and their deadlines ---------------------------------------------------------------------


def _ready_wait(settings: Settings) -> float:
    return settings.instance_ready_timeout_seconds


def _shutdown_wait(settings: Settings) -> float:
    return settings.instance_shutdown_timeout_seconds


READY_WAIT: SettingsReader = _ready_wait
SHUTDOWN_WAIT: SettingsReader = _shutdown_wait


# --- the tasks of a create -----------------------------------------------------------------------


@task(120)
def validate_resources(work: Work) -> str:
    """The node is ready and holds the image."""
    with work.db.session(write=False) as session:
        problem = service.node_ready(session, work.action_id)
    if problem is not None:
        raise GuestFailed(problem)
    driver, _name = work.driver()
    spec = work.spec()
    if spec.image not in {image.name for image in driver.list_images()}:
        raise GuestFailed(f"image {spec.image!r} is not on node {work.target().node_name}")
    return f"node {work.target().node_name} is ready and has image {spec.image}"


@task(120)
def allocate_ip(work: Work) -> str:
    """The instance holds its addresses."""
    with work.db.session() as session:
        return service.ensure_addresses(session, work.action_id)


@task(600)
def create_vm(work: Work) -> str:
    """The guest's disk (an overlay of the image) and its definition exist."""
    driver, name = work.driver()
    spec = work.spec()
    driver.define_guest(spec)
    return f"guest {name}: {spec.disk_gib} GiB overlay of {spec.image}"


@task(120)
def configure_hardware(work: Work) -> str:
    """The defined guest has the plan's vCPUs and memory."""
    driver, name = work.driver()
    spec = work.spec()
    found = driver.hardware(name)
    if (found.vcpus, found.memory_mib) != (spec.vcpus, spec.memory_mib):
        raise GuestFailed(f"the node defined {found.vcpus} vCPU / {found.memory_mib} MiB instead of "
                          f"{spec.vcpus} / {spec.memory_mib}")
    return f"{found.vcpus} vCPU, {found.memory_mib} MiB"


@task(180)
def apply_cloud_init(work: Work) -> str:
    """The NoCloud seed (hostname, password, keys, network) is written."""
    driver, _name = work.driver()
    spec = work.spec()
    driver.write_seed(spec)
    return (f"hostname {spec.hostname}, {len(spec.ssh_authorized_keys)} SSH key(s), "
            f"address {spec.network.address if spec.network else 'none'}")


@task(120)
def start_vm(work: Work) -> str:
    """The guest is powered on."""
    driver, name = work.driver()
    driver.start(name)
    return f"guest {name} started"


@task(120)
def configure_network(work: Work) -> str:
    """Each address has its reverse-DNS name."""
    with work.db.session() as session:
        return service.ensure_reverse_dns(session, work.action_id)


@task(60, waits=READY_WAIT)
def wait_for_guest_agent(work: Work) -> str:
    """The guest reports on its console that its seed is applied."""
    driver, name = work.driver()
    ready = driver.wait_ready(name, work.settings.instance_ready_timeout_seconds)
    return _described(ready)


def _described(ready: GuestReady) -> str:
    return (f"hostname={ready.hostname} address={ready.address} keys={ready.authorized_keys} "
            f"password={'set' if ready.root_password_set else 'unset'}")


@task(60 + VERIFY_TIMEOUT_SECONDS)
def verify_connectivity(work: Work) -> str:
    """What the guest reports matches what was asked: hostname, address, keys, password."""
    driver, name = work.driver()
    spec = work.spec()
    ready = driver.wait_ready(name, VERIFY_TIMEOUT_SECONDS)
    wanted_address = spec.network.address.split("/")[0] if spec.network else None
    problems = []
    if ready.hostname not in {spec.hostname, spec.hostname.split(".")[0]}:
        problems.append(f"hostname is {ready.hostname!r}, not {spec.hostname!r}")
    if wanted_address is not None and ready.address != wanted_address:
        problems.append(f"address is {ready.address}, not {wanted_address}")
    if ready.authorized_keys != len(spec.ssh_authorized_keys):
        problems.append(f"{ready.authorized_keys} SSH key(s) installed, not {len(spec.ssh_authorized_keys)}")
    if ready.root_password_set != (spec.root_password is not None):
        problems.append("the root password was not applied")
    if problems:
        raise GuestFailed("the guest does not match its order: " + "; ".join(problems))
    return _described(ready)


# --- the tasks of a delete -----------------------------------------------------------------------


@task(120)
def stop_vm(work: Work) -> str:
    """The guest's power is cut."""
    driver, name = work.driver()
    try:
        driver.poweroff(name)
    except GuestNotFound:
        return f"guest {name} was not on the node"
    return f"guest {name} powered off"


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


# --- how a create and a delete end ----------------------------------------------------------------


def conclude_create(work: Work, task: str | None, reason: str | None) -> None:
    """Success: the server runs and the webhook is told. Failure: remove the guest, free, refund, tell."""
    if task is None or reason is None:
        with work.db.session() as session:
            service.finish_create(session, work.settings, work.action_id)
        return
    with work.db.session(write=False) as session:  # ended meanwhile (an operator): its guest is not ours to remove
        if not engine.is_running(session, work.action_id):
            return
    note = reason
    try:
        driver, name = work.driver()
        driver.destroy_guest(name)
    except DriverError as error:  # the node is gone: the reconciler reports whatever is left there
        note = f"{reason} (the guest could not be removed from its node: {error})"
    with work.db.session() as session:  # the failed task and the failed build are seen together, never one alone
        engine.fail_task(session, work.action_id, task, reason)
        service.fail_create(session, work.settings, work.action_id, note)
    log.warning("instance build failed", action_id=work.action_id, task=task, reason=note)


def conclude_delete(work: Work, task: str | None, reason: str | None) -> None:
    """Success: the server is gone. Failure: the instance shows error and can be deleted again."""
    with work.db.session() as session:
        if task is None or reason is None:
            service.finish_delete(session, work.action_id)
            return
        engine.fail_task(session, work.action_id, task, reason)
        service.fail_delete(session, work.action_id, reason)


CREATE = Procedure(Command.CREATE.value, CREATE_TASKS,
                   (validate_resources, allocate_ip, create_vm, configure_hardware, apply_cloud_init, start_vm,
                    configure_network, wait_for_guest_agent, verify_connectivity), conclude_create)
DELETE = Procedure(Command.DELETE.value, DELETE_TASKS, (stop_vm, destroy_vm, release_ip, release_capacity),
                   conclude_delete)


def conclude_suspend(work: Work, task: str | None, reason: str | None) -> None:
    """The unpaid server is suspended, off if its node answered."""
    with work.db.session() as session:
        if task is not None and reason is not None:
            engine.fail_task(session, work.action_id, task, reason)
        service.finish_suspend(session, work.action_id, reason)


def conclude_reactivate(work: Work, task: str | None, reason: str | None) -> None:
    """The paid server runs again, or shows why it did not boot."""
    with work.db.session() as session:
        if task is not None and reason is not None:
            engine.fail_task(session, work.action_id, task, reason)
        service.finish_reactivate(session, work.action_id, reason)


SUSPEND = Procedure(Command.SUSPEND.value, SUSPEND_TASKS, (stop_vm,), conclude_suspend)
REACTIVATE = Procedure(Command.REACTIVATE.value, REACTIVATE_TASKS, (start_vm, wait_for_guest_agent),
                       conclude_reactivate)
PROCEDURES = (CREATE, DELETE, SUSPEND, REACTIVATE)  # registered by app.py


@DBOS.step(name="cloudlet.instances.due", retries_allowed=True, max_attempts=3)
def due() -> list[tuple[int, str, str]]:
    """Start end_of_cycle deletions whose time has come and suspensions of unpaid servers; then every running action."""
    running = worker.current()
    with running.db.session() as session:
        service.delete_due(session)
    with running.db.session() as session:
        service.suspend_unpaid(session)
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


def _summary(action: Action, instance_uuid: str) -> ActionSummary:
    return ActionSummary(id=action.id, instance_id=action.instance_id, instance_uuid=instance_uuid,
                         command=action.command, status=action.status.value, progress=action.progress,
                         current_task=action.current_task, error=action.error, workflow_id=action.workflow_id,
                         started_at=action.started_at, finished_at=action.finished_at)


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
    return _summary(action, actions.instance_row(session, action.instance_id).uuid)


def end_later(db: Database, settings: Settings, action_id: int, reason: str = "") -> None:
    """end_stale, run once the request that asked for it has answered (one that ended meanwhile is left)."""
    try:
        end_stale(db, settings, action_id, reason)
    except (Conflict, NotFound) as error:
        log.info("action not ended: it ended meanwhile", action_id=action_id, reason=error.message)


def end_stale(db: Database, settings: Settings, action_id: int, reason: str = "") -> ActionSummary:
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
            procedure.conclude(Work(db, settings, action_id, settings.action_cleanup_call_seconds), current, why)
        except Exception as error:  # the failure and the freed lock are recorded below all the same
            log.warning("clean-up of an ended action failed", action_id=action_id,
                        error=f"{type(error).__name__}: {error}")
    with db.session() as session:
        ended = actions.force_fail(session, action_id, why)
        uuid = actions.instance_row(session, ended.instance_id).uuid
        summary = _summary(ended, uuid)
    log.warning("action ended by an operator", action_id=action_id, command=command, reason=why)
    return summary


def reconcile_nodes(db: Database) -> list[reconcile.NodeReport]:
    """Compare every node's guests with the database, each node asked outside any transaction."""
    with db.session(write=False) as session:
        targets = nodes.node_targets(session)
    reports = []
    for target in targets:
        seen = reconcile.look(target.uri)
        with db.session() as session:
            reports.append(reconcile.record(session, target.id, target.name, seen))
    return reports


@DBOS.step(name="cloudlet.instances.reconcile_nodes")
def reconcile_step() -> list[reconcile.NodeReport]:
    """One round of reconciliation over every node."""
    return reconcile_nodes(worker.current().db)


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
