"""What an instance task works with (Work), the configured waits tasks include, and the guest tasks that
several procedures share (stop_vm, start_vm, wait_for_guest_agent, verify_connectivity).

Each procedure has its own file (build.py, deletion.py, suspension.py, power.py, rebuild.py, copies.py)
with its request function, its own tasks and its conclusion; the engine that runs them (DBOS workflows,
deadlines, the conclusion retried until recorded) is actions/runner.py, and app.py registers them. The
conclusion's own driver calls give up after action_cleanup_call_seconds (Work.call_seconds).
"""

from __future__ import annotations

import time
from typing import Any, cast

from cloudlet.actions.deadlines import DeadlineExceeded, SettingsReader, within
from cloudlet.actions.registry import task
from cloudlet.actions.work import ActionWork
from cloudlet.config import Settings
from cloudlet.drivers.base import GuestFailed, GuestNotFound, GuestReady, GuestSpec, HypervisorDriver, NodeUnreachable
from cloudlet.images.models import ImageCapability
from cloudlet.instances import actions, service
from cloudlet.kit.db import Database
from cloudlet.nodes import service as nodes

VERIFY_TIMEOUT_SECONDS = 30.0
AGENT_POLL_SECONDS = 1.0  # how often a booting guest's agent is pinged (each ping waits up to a few seconds)


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


class Work(ActionWork):
    """What an instance's task needs: an action's work (actions/work.py) and the node and guest it works on.

    With call_seconds set (how an action ends), every driver call gives up after that many seconds.
    """

    def __init__(self, db: Database, settings: Settings, drivers: nodes.Drivers, action_id: int,
                 call_seconds: float | None = None) -> None:
        super().__init__(db, settings, drivers, action_id, call_seconds)
        self._target: actions.Target | None = None

    def target(self) -> actions.Target:
        """The node and guest the action works on, read once per task run (no task moves its guest): a task
        asks for it several times (its driver, its spec, its message), and each read was five statements."""
        if self._target is None:
            with self.db.session(write=False) as session:
                self._target = actions.target_of(session, self.action_id)
        return self._target

    def driver(self) -> tuple[HypervisorDriver, str]:
        """The driver of the guest's node and the guest's name there."""
        target = self.target()
        if target.node_uri is None:
            raise GuestFailed("the instance has no node")
        driver = self.drivers.connect(target.node_uri)
        if self.call_seconds is not None:
            driver = cast(HypervisorDriver, BoundedDriver(driver, self.call_seconds))
        return driver, target.guest_name

    def spec(self) -> GuestSpec:
        """The guest as the database describes it."""
        with self.db.session(write=False) as session:
            return service.guest_spec(session, self.settings, self.target().instance_id)


# --- the configured waits a task's deadline includes ---------------------------------------------


def _ready_wait(settings: Settings) -> float:
    return settings.instance_ready_timeout_seconds


def _shutdown_wait(settings: Settings) -> float:
    return settings.instance_shutdown_timeout_seconds


READY_WAIT: SettingsReader = _ready_wait
SHUTDOWN_WAIT: SettingsReader = _shutdown_wait


# --- guest tasks several procedures share ----------------------------------------------------------


@task(120)
def stop_vm(work: Work) -> str:
    """The guest's power is cut."""
    driver, name = work.driver()
    try:
        driver.poweroff(name)
    except GuestNotFound:
        return f"guest {name} was not on the node"
    return f"guest {name} powered off"


@task(120)
def start_vm(work: Work) -> str:
    """The guest is powered on."""
    driver, name = work.driver()
    driver.start(name)
    return f"guest {name} started"


@task(60, waits=READY_WAIT)
def wait_for_guest_agent(work: Work) -> str:
    """The guest's agent answers, where its image has one, and the guest reports on its console that its seed is
    applied."""
    driver, name = work.driver()
    began = time.monotonic()
    limit = work.settings.instance_ready_timeout_seconds
    agent = ImageCapability.GUEST_AGENT in work.target().capabilities
    while agent and not driver.agent_ping(name):
        if time.monotonic() - began > limit:
            raise GuestFailed(f"the guest agent did not answer within {limit:g} s")
        time.sleep(AGENT_POLL_SECONDS)
    answered = f"guest agent answered after {time.monotonic() - began:.0f} s; " if agent else ""
    ready = driver.wait_ready(name, max(1.0, limit - (time.monotonic() - began)))
    return answered + _described(ready)


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
    reached = ""
    if wanted_address is not None and ImageCapability.SSH in work.target().capabilities:
        banner = driver.ssh_banner(name, wanted_address, VERIFY_TIMEOUT_SECONDS)
        reached = f"; SSH answers on {wanted_address}:22 ({banner})" if banner else "; SSH not checked (remote node)"
    return _described(ready) + reached

