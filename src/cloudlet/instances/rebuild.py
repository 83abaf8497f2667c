"""Reinstall, upgrade (resize) and password reset of an instance, each an Action run by the instance workflow.

The request checks what the state allows (409 while another action holds the instance or in the wrong
state, 403 while it is suspended; reinstall and upgrade also 409 SNAPSHOTS_EXIST while the instance has
snapshots, which live inside the disk they replace or resize), does what must be all-or-nothing in its
own transaction (the upgrade's prorated charge and the node's room, the new password sealed in the row)
and opens the action. The worker then carries out the tasks:

    reinstall       stop_vm, rebuild_disk, write_fresh_seed, start_vm, wait_for_guest_agent,
                    verify_connectivity, finalize
    upgrade         resize_vm, apply_resize, finalize
    reset_password  write_password_seed, apply_password, finalize

A reinstall throws the disk away and builds a fresh overlay of the (possibly new) template's image; the
guest keeps its name, so its MAC address, its IP addresses, hostname, keys and password come back with
the new seed. Reinstall and password reset write the seed under a new NoCloud instance-id (the
instance's uuid and the action's id), so cloud-init images, which apply users and passwords once per
instance-id, apply them again; the tiny image applies its seed on every boot anyway.

The snapshot count comes from the backups service, which knows nothing of instances: imports go one
way, instances/ to backups/.

Where the image has the QEMU guest agent and the server runs, the agent sets a new password at once, without
a restart; elsewhere it is applied at the guest's next boot (at once when the caller asks for a reboot). The
seed holds it either way, and the answer says which.
"""

from __future__ import annotations

from dataclasses import replace
from enum import StrEnum

from pydantic import BaseModel
from sqlalchemy.orm import Session

from cloudlet.actions import service as engine
from cloudlet.actions.registry import Procedure, task
from cloudlet.backups import service as copies
from cloudlet.billing import pricing
from cloudlet.billing import service as billing
from cloudlet.catalog import service as catalog
from cloudlet.catalog.schemas import TemplateGroup
from cloudlet.config import Settings
from cloudlet.drivers.base import GuestFailed, GuestSpec, GuestState
from cloudlet.images import service as images
from cloudlet.images.models import ImageCapability
from cloudlet.instances import actions, power, repository, service
from cloudlet.instances.models import ActionStatus, Instance, InstanceStatus
from cloudlet.instances.schemas import ActionRead, Allowed, Command, InstanceRead
from cloudlet.instances.work import (
    READY_WAIT,
    Work,
    start_vm,
    stop_vm,
    verify_connectivity,
    wait_for_guest_agent,
)
from cloudlet.kit.errors import Conflict, Invalid, NotFound
from cloudlet.nodes import service as nodes
from cloudlet.projects.schemas import Actor

FINALIZE = "finalize"
REINSTALL_TASKS = ("stop_vm", "rebuild_disk", "write_fresh_seed", "start_vm", "wait_for_guest_agent",
                   "verify_connectivity", FINALIZE)
UPGRADE_TASKS = ("resize_vm", "apply_resize", FINALIZE)
RESET_PASSWORD_TASKS = ("write_password_seed", "apply_password", FINALIZE)
REBOOT_PARAM = "reboot"
AGENT_PARAM = "agent"  # the guest agent sets the password in the running guest


class Applied(StrEnum):
    """When a change reaches the running guest."""

    NOW = "now"  # the guest restarts (or is built) with it as part of the action
    NEXT_BOOT = "next_boot"  # the guest keeps running as it is; its next start or reboot applies it


class ReinstallRead(BaseModel):
    """The instance, back to provisioning, and the action that rebuilds it."""

    instance: InstanceRead
    action: ActionRead


class UpgradeRead(BaseModel):
    """The instance on its new plan, what the upgrade cost, and when its new size applies."""

    instance: InstanceRead
    action: ActionRead
    charged_cents: int
    currency: str
    applied: Applied
    message: str


class PasswordResetRead(BaseModel):
    """The new root password (shown once), and how and when the guest gets it."""

    instance: InstanceRead
    action: ActionRead
    root_password: str
    applied: Applied
    guest_agent: bool
    message: str


# --- the requests --------------------------------------------------------------------------------


def _refuse_while_snapshots(session: Session, row: Instance, why: str) -> None:
    """409 while the instance has snapshots: they live inside its disk, which a reinstall or upgrade changes.

    A reinstall throws the disk (and the internal snapshots in it) away; qemu-img cannot resize a disk that
    holds internal snapshots, and reverting to one taken before a resize would bring back the old size.
    """
    count = copies.snapshot_count(session, row.id)
    if count:
        held = "1 snapshot" if count == 1 else f"{count} snapshots"
        raise Conflict(f"The instance has {held}: {why}. Delete the {held} first; backups are kept.",
                       code="SNAPSHOTS_EXIST")


def reinstall_options(session: Session, actor: Actor, ident: int | str) -> list[TemplateGroup]:
    """The OS templates the instance's plan can be rebuilt with, grouped by OS family."""
    row = actions.instance_of(session, actor, ident)
    return catalog.templates_for_plan(session, row.plan_id)


def request_reinstall(session: Session, actor: Actor, ident: int | str, template: int | str,
                      os_name: str = "") -> ReinstallRead:
    """Queue the rebuild of the instance's disk from a template's image (same address, keys and password)."""
    row = actions.instance_of(session, actor, ident, lock=True)
    actions.require_allowed(row, Allowed.REINSTALL)
    _refuse_while_snapshots(session, row, "a reinstall replaces the disk that holds snapshots")
    try:
        chosen = catalog.template_for_plan(session, template, row.plan_id)
    except NotFound:
        raise Invalid("os_template_id", f"There is no OS template {template!r}.", code="INVALID_TEMPLATE") from None
    image = images.image_for_template(session, chosen.id)
    row.template_id, row.image, row.os_name = chosen.id, image.name, os_name.strip()[:200] or chosen.name
    action = engine.begin(session, row, Command.REINSTALL, REINSTALL_TASKS)
    row.status, row.status_reason = InstanceStatus.PROVISIONING, ""
    session.flush()
    return ReinstallRead(instance=service.get_instance(session, actor, row.id),
                         action=actions.action_read(session, action))


def request_upgrade(session: Session, settings: Settings, actor: Actor, ident: int | str, plan: int | str,
                    reboot: bool) -> UpgradeRead:
    """Move the instance to a bigger plan: debit the prorated difference (402 when the wallet cannot), hold
    the extra room on its node (503 without it) and queue the resize; nothing is written when any part fails.

    Upgrading to the plan held charges nothing and applies its size again (how a failed resize is retried).
    """
    row = actions.instance_of(session, actor, ident, lock=True)
    actions.require_billing_right(session, actor, row.project_id)
    actions.require_allowed(row, Allowed.UPGRADE)
    _refuse_while_snapshots(session, row, "a disk that holds snapshots cannot be resized, and reverting to a "
                                          "snapshot from before the resize would bring the old size back")
    try:
        target = catalog.find_active_plan(session, plan)
    except NotFound:
        raise Invalid("package_id", f"There is no plan {plan!r} that can be ordered.", code="PLAN_NOT_FOUND") from None
    region = catalog.get_region(session, row.region_id)
    if region.code not in target.regions:
        raise Invalid("package_id", f"Plan {target.code} is not offered in region {region.code}.",
                      code="PLAN_NOT_FOUND")
    disk_gib = max(target.disk_gb, 1)
    if disk_gib < row.disk_gib:
        raise Invalid("package_id", f"Plan {target.code} has a {disk_gib} GiB disk, smaller than the instance's "
                      f"{row.disk_gib} GiB; a disk can only grow.", code="DISK_TOO_SMALL")
    sub = billing.subscription_for(session, row.uuid)
    if sub is None:
        raise Conflict("The instance has no subscription to upgrade.", code="NO_CYCLE")
    if row.reservation_id is None:
        raise Conflict("The instance holds no room on a node.", code="NO_GUEST")
    currency = billing.wallet_of(session, settings, row.project_id).currency
    price = pricing.plan_price(session, target.id, row.billing_cycle, currency, row.project_id)
    charge = billing.upgrade_subscription(session, sub.id, plan_id=target.id, price_cents=price.amount_cents)
    nodes.resize_reservation(session, row.reservation_id, nodes.resources_for_plan(target))
    before = f"{row.vcpus} vCPU, {row.memory_mib} MiB, {row.disk_gib} GiB"
    row.plan_id, row.vcpus, row.memory_mib, row.disk_gib = target.id, target.vcpu, target.ram_mb, disk_gib
    action = engine.begin(session, row, Command.UPGRADE, UPGRADE_TASKS)
    action.params = {REBOOT_PARAM: reboot, "from": before}
    restarting = reboot and row.status is InstanceStatus.RUNNING
    if restarting:
        row.status = InstanceStatus.RESTARTING
    row.status_reason = ""
    session.flush()
    size = f"{target.vcpu} vCPU, {target.ram_mb} MiB of memory and a {disk_gib} GiB disk"
    message = (f"The server restarts now with {size}." if restarting else
               f"The disk grows now; {size} apply at the server's next boot (a restart applies them).")
    return UpgradeRead(instance=service.get_instance(session, actor, row.id),
                       action=actions.action_read(session, action), charged_cents=charge.amount_cents,
                       currency=currency, applied=Applied.NOW if restarting else Applied.NEXT_BOOT, message=message)


def request_password_reset(session: Session, settings: Settings, actor: Actor, ident: int | str,
                           reboot: bool = False, root_password: str | None = None) -> PasswordResetRead:
    """A new root password (the caller's, held to the creation rules, or a random one), returned once, and queued."""
    row = actions.instance_of(session, actor, ident, lock=True)
    actions.require_allowed(row, Allowed.RESET_PASSWORD)
    password = service.generate_password() if root_password is None else root_password
    service.check_root_password(password)
    row.root_password = service.seal(settings, password)
    action = engine.begin(session, row, Command.RESET_PASSWORD, RESET_PASSWORD_TASKS)
    has_agent = ImageCapability.GUEST_AGENT in actions.image_capabilities(session, row)
    by_agent = has_agent and row.status is InstanceStatus.RUNNING  # no restart needed, whatever was asked
    restarting = reboot and not by_agent and row.status is InstanceStatus.RUNNING
    action.params = {REBOOT_PARAM: restarting, AGENT_PARAM: by_agent}
    if restarting:
        row.status = InstanceStatus.RESTARTING
    row.status_reason = ""
    session.flush()
    if by_agent:
        message = "The guest agent sets the new password in the running server now, without a restart."
    elif has_agent:
        message = "The server is off: the password is set when it starts."
    elif restarting:
        message = "The image has no guest agent, so the password is set at boot: the server restarts now to apply it."
    else:
        message = ("The image has no guest agent, so the password is set at the server's next boot "
                   "(a restart applies it).")
    return PasswordResetRead(instance=service.get_instance(session, actor, row.id),
                             action=actions.action_read(session, action), root_password=password,
                             applied=Applied.NOW if by_agent or restarting else Applied.NEXT_BOOT,
                             guest_agent=has_agent, message=message)


# --- the tasks -----------------------------------------------------------------------------------


def fresh_spec(work: Work) -> GuestSpec:
    """The guest as the database describes it, under a NoCloud instance-id of this action's own."""
    spec = work.spec()
    return replace(spec, instance_id=f"{spec.instance_id}-a{work.action_id}")


def _param(work: Work, name: str) -> bool:
    with work.db.session(write=False) as session:
        action = repository.action(session, work.action_id)
        return action is not None and bool(action.params.get(name, False))


@task(600)
def rebuild_disk(work: Work) -> str:
    """The old disk, seed and definition are gone; a fresh overlay of the image is defined in their place."""
    driver, name = work.driver()
    spec = fresh_spec(work)
    driver.destroy_guest(name)
    driver.define_guest(spec)
    return f"guest {name}: a fresh {spec.disk_gib} GiB overlay of {spec.image}"


@task(180)
def write_fresh_seed(work: Work) -> str:
    """The seed (hostname, password, keys, address) is written under a new instance-id."""
    driver, _name = work.driver()
    spec = fresh_spec(work)
    driver.write_seed(spec)
    return (f"instance-id {spec.instance_id}: hostname {spec.hostname}, {len(spec.ssh_authorized_keys)} SSH key(s), "
            f"address {spec.network.address if spec.network else 'none'}")


@task(600)
def resize_vm(work: Work) -> str:
    """The guest's definition has the plan's vCPUs and memory, and its disk the plan's size."""
    driver, name = work.driver()
    spec = work.spec()
    driver.resize_guest(spec)
    return f"guest {name}: {spec.vcpus} vCPU, {spec.memory_mib} MiB, {spec.disk_gib} GiB disk"


@task(180, waits=lambda settings: settings.instance_shutdown_timeout_seconds
       + settings.instance_ready_timeout_seconds)
def apply_resize(work: Work) -> str:
    """With a reboot, the running guest is powered off and on with its new size; otherwise that waits."""
    driver, name = work.driver()
    spec = work.spec()
    if not _param(work, REBOOT_PARAM):
        return "the disk is bigger now; the vCPUs and memory apply at the next boot"
    if driver.state(name) is not GuestState.RUNNING:
        return "the guest is off; it starts with its new size"
    driver.shutdown(name, work.settings.instance_shutdown_timeout_seconds)
    driver.start(name)
    driver.wait_ready(name, work.settings.instance_ready_timeout_seconds)
    found = driver.hardware(name)
    if (found.vcpus, found.memory_mib) != (spec.vcpus, spec.memory_mib):
        raise GuestFailed(f"the guest restarted with {found.vcpus} vCPU / {found.memory_mib} MiB instead of "
                          f"{spec.vcpus} / {spec.memory_mib}")
    return f"restarted with {found.vcpus} vCPU and {found.memory_mib} MiB"


@task(180)
def write_password_seed(work: Work) -> str:
    """The guest's seed holds the new root password, under a new instance-id."""
    driver, name = work.driver()
    spec = fresh_spec(work)
    driver.write_seed(spec)
    return f"guest {name}: seed {spec.instance_id} holds the new root password"


@task(120, waits=READY_WAIT)
def apply_password(work: Work) -> str:
    """The guest agent sets the password in the running guest; or with a reboot, the running guest restarts and
    applies it; otherwise its next boot does."""
    driver, name = work.driver()
    spec = fresh_spec(work)
    if _param(work, AGENT_PARAM):
        if driver.state(name) is not GuestState.RUNNING:
            return "the guest is off; it applies the password when it starts"
        if spec.root_password is None:
            raise GuestFailed("the instance has no root password to set")
        driver.set_password(name, "root", spec.root_password)
        return f"guest {name}: the guest agent set the new root password, no restart"
    wanted = spec.instance_id
    if not _param(work, REBOOT_PARAM):
        return "no guest agent: the password is applied at the next boot"
    if driver.state(name) is not GuestState.RUNNING:
        return "the guest is off; it applies the password when it starts"
    driver.reboot(name)
    ready = driver.wait_ready(name, work.settings.instance_ready_timeout_seconds)
    if ready.instance_id != wanted or not ready.root_password_set:
        raise GuestFailed(f"the guest booted seed {ready.instance_id!r} (password "
                          f"{'set' if ready.root_password_set else 'unset'}), not {wanted!r}")
    return f"guest {name} restarted with seed {ready.instance_id}: password set"


# --- how they end ----------------------------------------------------------------------------------


def conclude_reinstall(work: Work, task: str | None, reason: str | None) -> None:
    """Success: the rebuilt server runs. Failure: the instance shows error, to be reinstalled or deleted."""
    with work.db.session() as session:
        action, row = actions.locked(session, work.action_id)
        if action.status is not ActionStatus.RUNNING:
            return
        if task is None or reason is None:
            engine.complete_task(session, work.action_id, FINALIZE, f"running at {row.ipv4}")
            row.status, reason = InstanceStatus.RUNNING, None
        else:
            engine.fail_task(session, work.action_id, task, reason)
            row.status = InstanceStatus.ERROR
        actions.end(action, row, reason, failed="reinstall")
        session.flush()


def conclude_observed(work: Work, task: str | None, reason: str | None) -> None:
    """Success or not, the instance's status becomes what the node says, and the action ends."""
    seen = power.observe(work)
    with work.db.session() as session:
        action, row = actions.locked(session, work.action_id)
        if action.status is not ActionStatus.RUNNING:
            return
        row.status = seen.status
        if task is None or reason is None:
            engine.complete_task(session, work.action_id, FINALIZE, f"{seen.note}: status {seen.status.value}")
            reason = None
        else:
            engine.fail_task(session, work.action_id, task, reason)
        actions.end(action, row, reason, failed=action.command.replace("_", " "))
        session.flush()


PROCEDURES = (  # registered by app.py
    Procedure(Command.REINSTALL.value, REINSTALL_TASKS, (stop_vm, rebuild_disk, write_fresh_seed, start_vm,
                                                         wait_for_guest_agent, verify_connectivity),
              conclude_reinstall),
    Procedure(Command.UPGRADE.value, UPGRADE_TASKS, (resize_vm, apply_resize), conclude_observed),
    Procedure(Command.RESET_PASSWORD.value, RESET_PASSWORD_TASKS, (write_password_seed, apply_password),
              conclude_observed),
)
