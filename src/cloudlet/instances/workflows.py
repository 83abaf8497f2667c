"""Actions as durable DBOS workflows: each task of a create or delete is a step.

A step records its task as started, does its work (a driver call outside any transaction, or a
short database change), and records it as completed with what it found. DBOS keeps each finished
step's result, so a worker that crashes mid-action resumes at the step it was in; every step is
idempotent (drivers are idempotent on the guest's name, allocations on the instance). A step that
fails for good (GuestFailed, or an error that outlasts its retries) ends the action: a failed
create removes the guest, frees the address and the capacity, and refunds the whole charge.

The workflow id is the action's, so starting one is idempotent: the after-commit hook (in a process
running a worker) and the sweep (for actions queued by a process without one) may both start it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from dbos import DBOS, SetWorkflowID

from cloudlet import worker
from cloudlet.config import Settings
from cloudlet.drivers.base import DriverError, GuestFailed, GuestNotFound, GuestReady, GuestSpec, HypervisorDriver
from cloudlet.instances import actions, reconcile, service
from cloudlet.instances.schemas import CREATE_TASKS, DELETE_TASKS, REACTIVATE_TASKS, SUSPEND_TASKS, Command
from cloudlet.kit.db import Database
from cloudlet.nodes import service as nodes

log = structlog.get_logger(__name__)

# a customer waits on every action: look for new ones five times a second, not once (DBOS's default)
QUEUE = worker.QueueSpec("cloudlet-instances", polling_interval_seconds=0.2)
SWEEP_NAME = "cloudlet-instances-sweep"
RECONCILE_NAME = "cloudlet-instances-reconcile"
VERIFY_TIMEOUT_SECONDS = 30.0


class Work:
    """What a task needs: the database, the settings, and the action it belongs to."""

    def __init__(self, db: Database, settings: Settings, action_id: int) -> None:
        self.db = db
        self.settings = settings
        self.action_id = action_id

    def target(self) -> actions.Target:
        """The node and guest the action works on."""
        with self.db.session(write=False) as session:
            return actions.target_of(session, self.action_id)

    def driver(self) -> tuple[HypervisorDriver, str]:
        """The driver of the guest's node and the guest's name there."""
        target = self.target()
        if target.node_uri is None:
            raise GuestFailed("the instance has no node")
        return nodes.connect(target.node_uri), target.guest_name

    def spec(self) -> GuestSpec:
        """The guest as the database describes it."""
        with self.db.session(write=False) as session:
            return service.guest_spec(session, self.settings, self.target().instance_id)


# --- the tasks of a create -----------------------------------------------------------------------


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


def allocate_ip(work: Work) -> str:
    """The instance holds its addresses."""
    with work.db.session() as session:
        return service.ensure_addresses(session, work.action_id)


def create_vm(work: Work) -> str:
    """The guest's disk (an overlay of the image) and its definition exist."""
    driver, name = work.driver()
    spec = work.spec()
    driver.define_guest(spec)
    return f"guest {name}: {spec.disk_gib} GiB overlay of {spec.image}"


def configure_hardware(work: Work) -> str:
    """The defined guest has the plan's vCPUs and memory."""
    driver, name = work.driver()
    spec = work.spec()
    found = driver.hardware(name)
    if (found.vcpus, found.memory_mib) != (spec.vcpus, spec.memory_mib):
        raise GuestFailed(f"the node defined {found.vcpus} vCPU / {found.memory_mib} MiB instead of "
                          f"{spec.vcpus} / {spec.memory_mib}")
    return f"{found.vcpus} vCPU, {found.memory_mib} MiB"


def apply_cloud_init(work: Work) -> str:
    """The NoCloud seed (hostname, password, keys, network) is written."""
    driver, _name = work.driver()
    spec = work.spec()
    driver.write_seed(spec)
    return (f"hostname {spec.hostname}, {len(spec.ssh_authorized_keys)} SSH key(s), "
            f"address {spec.network.address if spec.network else 'none'}")


def start_vm(work: Work) -> str:
    """The guest is powered on."""
    driver, name = work.driver()
    driver.start(name)
    return f"guest {name} started"


def configure_network(work: Work) -> str:
    """Each address has its reverse-DNS name."""
    with work.db.session() as session:
        return service.ensure_reverse_dns(session, work.action_id)


def wait_for_guest_agent(work: Work) -> str:
    """The guest reports on its console that its seed is applied."""
    driver, name = work.driver()
    ready = driver.wait_ready(name, work.settings.instance_ready_timeout_seconds)
    return _described(ready)


def _described(ready: GuestReady) -> str:
    return (f"hostname={ready.hostname} address={ready.address} keys={ready.authorized_keys} "
            f"password={'set' if ready.root_password_set else 'unset'}")


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


def stop_vm(work: Work) -> str:
    """The guest's power is cut."""
    driver, name = work.driver()
    try:
        driver.poweroff(name)
    except GuestNotFound:
        return f"guest {name} was not on the node"
    return f"guest {name} powered off"


def destroy_vm(work: Work) -> str:
    """The guest, its disk, its seed and its console log are gone."""
    driver, name = work.driver()
    driver.destroy_guest(name)
    return f"guest {name} removed from node {work.target().node_name}"


def release_ip(work: Work) -> str:
    """The addresses are free again."""
    with work.db.session() as session:
        return service.release_addresses(session, work.target().instance_id)


def release_capacity(work: Work) -> str:
    """The node's room is given back."""
    with work.db.session() as session:
        return service.release_capacity(session, work.target().instance_id)


Task = Callable[[Work], str]
Conclusion = Callable[[Work, str | None, str | None], None]  # (work, failed task, reason); both None on success


@dataclass(frozen=True)
class Procedure:
    """How a command is carried out: its tasks in order, then one conclusion (success or clean-up)."""

    tasks: tuple[Task, ...]
    conclude: Conclusion


TASKS: dict[str, Task] = {}
PROCEDURES: dict[str, Procedure] = {}


def procedure(command: Command, recorded: tuple[str, ...], tasks: tuple[Task, ...], conclude: Conclusion) -> None:
    """Declare how a command runs; `recorded` is the task list its actions show (the tasks, then the last one
    the conclusion records)."""
    if tuple(task.__name__ for task in tasks) != recorded[:-1]:
        raise RuntimeError(f"the tasks of {command} do not match what its actions record")
    for task in tasks:  # a task's name is its key in every action: one function per name
        if TASKS.setdefault(task.__name__, task) is not task:
            raise RuntimeError(f"two different tasks are named {task.__name__!r}")
    PROCEDURES[command.value] = Procedure(tasks, conclude)


def _work(action_id: int) -> Work:
    running = worker.current()
    return Work(running.db, running.settings, action_id)


# Infrastructure trouble (the node did not answer, the database blinked) is retried; GuestFailed is not.
@DBOS.step(name="cloudlet.instances.task", retries_allowed=True, max_attempts=4, interval_seconds=2.0,
           backoff_rate=2.0)
def run_task(action_id: int, name: str) -> str | None:
    """One task: None when it is done, else why it failed for good."""
    work = _work(action_id)
    with work.db.session() as session:
        actions.start_task(session, action_id, name)
    try:
        detail = TASKS[name](work)
    except GuestFailed as failure:
        return failure.reason
    with work.db.session() as session:
        actions.complete_task(session, action_id, name, detail)
    log.info("instance task done", action_id=action_id, task=name, detail=detail)
    return None


@DBOS.step(name="cloudlet.instances.conclude", retries_allowed=True, max_attempts=4, interval_seconds=2.0)
def conclude(action_id: int, command: str, task: str | None, reason: str | None) -> None:
    """End the action: its last task on success, its clean-up after a failed task."""
    PROCEDURES[command].conclude(_work(action_id), task, reason)


def _attempt(action_id: int, task: str) -> str | None:
    try:
        return run_task(action_id, task)
    except Exception as error:  # retries exhausted: the action ends here
        return f"{type(error).__name__}: {error}"


@DBOS.workflow(name="cloudlet.instances.run")
def run(action_id: int, command: str) -> None:
    """Carry out an action task by task; the first task that fails for good ends it with its clean-up."""
    for task in PROCEDURES[command].tasks:
        reason = _attempt(action_id, task.__name__)
        if reason is not None:
            conclude(action_id, command, task.__name__, reason)
            return
    conclude(action_id, command, None, None)


# --- how a create and a delete end ----------------------------------------------------------------


def conclude_create(work: Work, task: str | None, reason: str | None) -> None:
    """Success: the server runs and the webhook is told. Failure: remove the guest, free, refund, tell."""
    if task is None or reason is None:
        with work.db.session() as session:
            service.finish_create(session, work.settings, work.action_id)
        return
    note = reason
    try:
        driver, name = work.driver()
        driver.destroy_guest(name)
    except DriverError as error:  # the node is gone: the reconciler reports whatever is left there
        note = f"{reason} (the guest could not be removed from its node: {error})"
    with work.db.session() as session:  # the failed task and the failed build are seen together, never one alone
        actions.fail_task(session, work.action_id, task, reason)
        service.fail_create(session, work.settings, work.action_id, note)
    log.warning("instance build failed", action_id=work.action_id, task=task, reason=note)


def conclude_delete(work: Work, task: str | None, reason: str | None) -> None:
    """Success: the server is gone. Failure: the instance shows error and can be deleted again."""
    with work.db.session() as session:
        if task is None or reason is None:
            service.finish_delete(session, work.action_id)
            return
        actions.fail_task(session, work.action_id, task, reason)
        service.fail_delete(session, work.action_id, reason)


procedure(Command.CREATE, CREATE_TASKS, (validate_resources, allocate_ip, create_vm, configure_hardware,
                                         apply_cloud_init, start_vm, configure_network, wait_for_guest_agent,
                                         verify_connectivity), conclude_create)
procedure(Command.DELETE, DELETE_TASKS, (stop_vm, destroy_vm, release_ip, release_capacity), conclude_delete)


def conclude_suspend(work: Work, task: str | None, reason: str | None) -> None:
    """The unpaid server is suspended, off if its node answered."""
    with work.db.session() as session:
        if task is not None and reason is not None:
            actions.fail_task(session, work.action_id, task, reason)
        service.finish_suspend(session, work.action_id, reason)


def conclude_reactivate(work: Work, task: str | None, reason: str | None) -> None:
    """The paid server runs again, or shows why it did not boot."""
    with work.db.session() as session:
        if task is not None and reason is not None:
            actions.fail_task(session, work.action_id, task, reason)
        service.finish_reactivate(session, work.action_id, reason)


procedure(Command.SUSPEND, SUSPEND_TASKS, (stop_vm,), conclude_suspend)
procedure(Command.REACTIVATE, REACTIVATE_TASKS, (start_vm, wait_for_guest_agent), conclude_reactivate)


def start(queued: Iterable[tuple[int, str, str]]) -> None:
    """Enqueue the workflows of these (id, command, workflow id) actions (each at most once, whoever asks)."""
    for action_id, command, workflow_id in queued:
        with SetWorkflowID(workflow_id):
            DBOS.enqueue_workflow(QUEUE.name, run, action_id, command)


@DBOS.step(name="cloudlet.instances.due", retries_allowed=True, max_attempts=3)
def due() -> list[tuple[int, str, str]]:
    """Start end_of_cycle deletions whose time has come and suspensions of unpaid servers; then every running action."""
    running = worker.current()
    with running.db.session() as session:
        service.delete_due(session)
    with running.db.session() as session:
        service.suspend_unpaid(session)
    with running.db.session(write=False) as session:
        return actions.running_actions(session)


@DBOS.workflow(name="cloudlet.instances.sweep")
def sweep(scheduled_at: datetime, _context: Any) -> None:
    """Make sure every running action has its workflow (starting one that has is a no-op)."""
    found = due()
    start(found)
    if found:
        log.debug("instance sweep", scheduled_at=scheduled_at.isoformat(), running=len(found))


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


worker.start_after_commit(actions.STARTED_KEY, start, "action")


def schedules(settings: Settings) -> list[worker.Schedule]:
    """The sweep and reconciliation schedules the worker applies at start."""
    return [worker.Schedule(SWEEP_NAME, sweep, settings.instance_sweep_schedule, queue=QUEUE.name),
            worker.Schedule(RECONCILE_NAME, reconcile_run, settings.instance_reconcile_schedule)]
