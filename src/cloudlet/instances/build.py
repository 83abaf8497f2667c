"""The create procedure: the request that pays for, places and addresses a new server and opens its
action, the tasks that build its guest, and how the build ends.

    create  validate_resources, allocate_ip, create_vm, configure_hardware, apply_cloud_init, start_vm,
            configure_network, wait_for_guest_agent, verify_connectivity, finalize

The request's transaction reserves what the server needs (the first cycle's payment, room on a node, an
address) or refuses with nothing written; the worker then carries the action out task by task, each
recorded in its own short transaction, so any surface can show the progress while it runs. A failed build
removes its guest, frees its address and room and refunds in full.
"""

from __future__ import annotations

import uuid

import structlog
from sqlalchemy.orm import Session

from cloudlet.actions import service as engine
from cloudlet.actions.registry import Procedure, task
from cloudlet.billing import pricing
from cloudlet.billing import service as billing
from cloudlet.billing.schemas import SubscriptionCreate
from cloudlet.catalog import service as catalog
from cloudlet.catalog.schemas import PlanRead, RegionRead
from cloudlet.config import Settings
from cloudlet.drivers.base import DriverError, GuestFailed
from cloudlet.images import service as images
from cloudlet.instances import actions, queries, repository, service
from cloudlet.instances.models import Action, ActionStatus, Instance, InstanceStatus
from cloudlet.instances.schemas import CREATE_TASKS, Command, CreatedInstance, InstanceCreate
from cloudlet.instances.work import Work, start_vm, verify_connectivity, wait_for_guest_agent
from cloudlet.kit import clock, money, sshkeys
from cloudlet.kit.errors import Invalid, NotFound
from cloudlet.networking import service as networking
from cloudlet.networking.schemas import IpFamily
from cloudlet.nodes import service as nodes
from cloudlet.nodes.models import NodeStatus
from cloudlet.projects import service as projects
from cloudlet.projects.schemas import Actor
from cloudlet.webhooks import service as webhooks

log = structlog.get_logger(__name__)


# --- the request ---------------------------------------------------------------------------------


def _region_for(session: Session, wanted: int | str | None, plan: PlanRead) -> RegionRead:
    regions = catalog.list_regions(session)
    if wanted is None:
        offered = [r for r in regions if r.is_available and r.code in plan.regions]
        if not offered:
            raise Invalid("region", f"Plan {plan.code} is not offered in any region.", code="LOCATION_NOT_FOUND")
        return offered[0]
    found = next((r for r in regions if (r.id == wanted if isinstance(wanted, int) else r.code == wanted)), None)
    if found is None or not found.is_available:
        raise Invalid("region", f"There is no available region {wanted!r}.", code="LOCATION_NOT_FOUND")
    if found.code not in plan.regions:
        raise Invalid("region", f"Plan {plan.code} is not offered in region {found.code}.", code="LOCATION_NOT_FOUND")
    return found


def _plan_for(session: Session, wanted: int | str, category: str | None) -> PlanRead:
    try:
        plan = catalog.find_active_plan(session, wanted)
    except NotFound:
        raise Invalid("plan", f"There is no plan {wanted!r} that can be ordered.", code="PLAN_NOT_FOUND") from None
    if category is not None and category != plan.category:
        raise Invalid("category", f"Plan {plan.code} is in category {plan.category!r}, not {category!r}.",
                      code="PLAN_NOT_FOUND")
    return plan


def _keys_for(session: Session, project_id: int, key_ids: list[int], inline: list[str]) -> list[str]:
    keys: list[str] = []
    for key_id in key_ids:
        found = repository.ssh_key(session, key_id)
        if found is None or found.project_id != project_id:
            raise Invalid("ssh_key_ids", f"There is no SSH key {key_id} in this project.", code="INVALID_SSH_KEY")
        keys.append(found.public_key)
    keys.extend(sshkeys.parse(text, "ssh_keys").line for text in inline)
    if not keys:  # an order that names no key gets the project's default key, when it has one
        default = repository.default_ssh_key(session, project_id)
        if default is not None:
            keys.append(default.public_key)
    return list(dict.fromkeys(keys))


def create_instance(session: Session, settings: Settings, actor: Actor, data: InstanceCreate, *,
                    actor_project: int) -> CreatedInstance:
    """Pay for, place and address a new server, and queue its build; nothing is written when any part fails.

    Raises Invalid (422) for a bad plan, region, template, hostname, password or key, PaymentRequired
    (402) when the wallet cannot pay the first cycle, Unavailable (503) when no node has room or no
    address is free.
    """
    project_id = data.project_id if data.project_id is not None else actor_project
    projects.require_membership(session, actor.user.id, project_id, fence=actor.project_scope)
    actions.require_billing_right(session, actor, project_id)
    hostname = service.check_hostname(data.hostname)
    plan = _plan_for(session, data.plan, data.category)
    region = _region_for(session, data.region, plan)
    try:
        template = catalog.template_for_plan(session, data.template, plan.id)
    except NotFound:
        raise Invalid("os_template", f"There is no OS template {data.template!r}.", code="INVALID_TEMPLATE") from None
    image = images.image_for_template(session, template.id)
    generated = data.root_password is None
    password = service.generate_password() if data.root_password is None else data.root_password
    service.check_root_password(password)
    keys = _keys_for(session, project_id, data.ssh_key_ids, data.ssh_keys)
    if data.webhook_url is not None:
        webhooks.check_url(settings, data.webhook_url)
    wallet = billing.wallet_of(session, settings, project_id)
    pricing.require_balance_for_template(session, template.id, money.Money(
        billing.balance_cents(session, settings, project_id), wallet.currency))
    try:
        price = pricing.plan_price(session, plan.id, data.billing_cycle, wallet.currency, project_id)
    except NotFound:
        raise Invalid("billing_cycle", f"There is no billing cycle {data.billing_cycle!r}.",
                      code="INVALID_BILLING_CYCLE") from None
    public_id = str(uuid.uuid4())
    row = Instance(uuid=public_id, project_id=project_id, created_by=actor.user.id, name=data.name.strip() or hostname,
                   hostname=hostname, plan_id=plan.id, region_id=region.id, template_id=template.id,
                   os_name=data.os_name or template.name, image=image.name, billing_cycle=price.cycle,
                   vcpus=plan.vcpu, memory_mib=plan.ram_mb, disk_gib=max(plan.disk_gb, 1),
                   guest_name=f"i{public_id.replace('-', '')[:15]}", ipv4=None, ipv6=None,
                   root_password=service.seal(settings, password), ssh_keys=keys, webhook_url=data.webhook_url,
                   webhook_secret=service.seal(settings, data.webhook_secret) if data.webhook_secret else None,
                   status=InstanceStatus.PROVISIONING, status_reason="")
    repository.insert(session, row)
    charge = billing.start_subscription(session, settings, SubscriptionCreate(
        project_id=project_id, reference=public_id, plan_id=plan.id, cycle=price.cycle, months=price.months,
        price_cents=price.amount_cents))
    reservation = nodes.schedule(session, region.id, nodes.resources_for_plan(plan), holder=f"instance:{public_id}")
    row.node_id, row.reservation_id = reservation.node_id, reservation.id
    row.ipv4 = networking.allocate(session, region.code, public_id, IpFamily.IPV4, hostname=hostname).address
    row.ipv6 = _optional_ipv6(session, region.code, public_id, hostname)
    action = engine.begin(session, row, Command.CREATE, CREATE_TASKS)
    return CreatedInstance(instance=queries.instance_read(session, row.id), action=actions.action_read(session, action),
                           charged_cents=charge.amount_cents, root_password=password if generated else None)


def _optional_ipv6(session: Session, region: str, owner: str, hostname: str) -> str | None:
    # IPv6 is given where the region has a v6 pool; its absence is no reason to refuse a server
    if not any(p.version == 6 and p.is_active for p in networking.list_pools(session, region)):
        return None
    return networking.allocate(session, region, owner, IpFamily.IPV6, hostname=hostname).address



# --- the tasks -------------------------------------------------------------------------------------


@task(120)
def validate_resources(work: Work) -> str:
    """The node is ready and holds the image."""
    with work.db.session(write=False) as session:
        problem = node_ready(session, work.action_id)
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
        return ensure_addresses(session, work.action_id)


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
def configure_network(work: Work) -> str:
    """Each address has its reverse-DNS name."""
    with work.db.session() as session:
        return ensure_reverse_dns(session, work.action_id)


def node_ready(session: Session, action_id: int) -> str | None:
    """Why the action's node cannot take the build now, or None when it can."""
    row = actions.instance_row(session, actions.target_of(session, action_id).instance_id)
    if row.node_id is None:
        return "the instance has no node"
    node = nodes.get_node(session, row.node_id)
    if node.health is not NodeStatus.READY:
        return f"node {node.name} is {node.health.value}: {node.status_reason or 'no heartbeat yet'}"
    return None


def ensure_addresses(session: Session, action_id: int) -> str:
    """Make sure the instance holds its addresses (idempotent: held ones are kept); says which."""
    row = actions.instance_row(session, actions.target_of(session, action_id).instance_id, lock=True)
    region = catalog.get_region(session, row.region_id)
    row.ipv4 = networking.allocate(session, region.code, row.uuid, IpFamily.IPV4, hostname=row.hostname).address
    if row.ipv6 is not None:
        row.ipv6 = networking.allocate(session, region.code, row.uuid, IpFamily.IPV6, hostname=row.hostname).address
    session.flush()
    return " ".join(a for a in (row.ipv4, row.ipv6) if a)


def ensure_reverse_dns(session: Session, action_id: int) -> str:
    """Give each of the instance's addresses its reverse-DNS name (the hostname) unless one was set."""
    row = actions.instance_row(session, actions.target_of(session, action_id).instance_id)
    named = []
    for allocation in networking.allocations(session, row.uuid):
        name = allocation.rdns or networking.default_rdns(row.hostname)
        if name is not None and allocation.rdns is None:
            networking.set_rdns(session, allocation.address, name)
        named.append(f"{allocation.address} -> {name or '(no PTR: hostname is not fully qualified)'}")
    return "; ".join(named)



# --- how a build ends -------------------------------------------------------------------------------


def _seconds(action: Action) -> int:
    return int(((action.finished_at or clock.now()) - action.started_at).total_seconds())


def _notify(session: Session, settings: Settings, row: Instance, action: Action, *, ok: bool) -> None:
    if row.webhook_url is None:
        return
    secret = service.unseal(settings, row.webhook_secret) if row.webhook_secret else None
    make = webhooks.deployment_completed if ok else webhooks.deployment_failed
    payload = make(vps_id=row.id, name=row.hostname, ip_address=row.ipv4, deployment_time_seconds=_seconds(action))
    webhooks.enqueue(session, settings, url=row.webhook_url, secret=secret, event=payload.event, payload=payload,
                     reference=row.uuid)


def finish_create(session: Session, settings: Settings, action_id: int) -> None:
    """The last task of a create: the server runs; tell the webhook."""
    action, row = actions.locked(session, action_id)
    if action.status is not ActionStatus.RUNNING:
        return
    engine.complete_task(session, action_id, "finalize", f"running at {row.ipv4}")
    actions.end(action, row, None)
    row.status, row.provisioned_at = InstanceStatus.RUNNING, clock.now()
    session.flush()
    _notify(session, settings, row, action, ok=True)


def fail_create(session: Session, settings: Settings, action_id: int, reason: str) -> None:
    """After a failed build whose guest was removed: free the address and capacity, refund in full, tell the webhook."""
    action, row = actions.locked(session, action_id)
    if action.status is not ActionStatus.RUNNING:
        return
    service.release_addresses(session, row.id)
    service.release_capacity(session, row.id)
    sub = billing.subscription_for(session, row.uuid)
    if sub is not None:
        billing.void_subscription(session, sub.id)
    actions.end(action, row, reason)
    row.status = InstanceStatus.ERROR
    session.flush()
    _notify(session, settings, row, action, ok=False)


def conclude_create(work: Work, task: str | None, reason: str | None) -> None:
    """Success: the server runs and the webhook is told. Failure: remove the guest, free, refund, tell."""
    if task is None or reason is None:
        with work.db.session() as session:
            finish_create(session, work.settings, work.action_id)
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
        fail_create(session, work.settings, work.action_id, note)
    log.warning("instance build failed", action_id=work.action_id, task=task, reason=note)


CREATE = Procedure(Command.CREATE.value, CREATE_TASKS,
                   (validate_resources, allocate_ip, create_vm, configure_hardware, apply_cloud_init, start_vm,
                    configure_network, wait_for_guest_agent, verify_connectivity), conclude_create)

PROCEDURES = (CREATE,)  # registered by app.py
