"""The instance lifecycle: create (paid, placed, addressed, then built by a workflow), read, delete.

A create or delete answers at once: the request's transaction reserves what the server needs
(the first cycle's payment, room on a node, an address) or refuses with nothing written, and queues
an Action; the worker's workflow (workflows.py) carries the action out task by task, recording each
task here in its own short transaction, so any surface can show the progress while it runs.
"""

from __future__ import annotations

import secrets
import string
import uuid
from collections import Counter
from datetime import datetime
from functools import lru_cache

from sqlalchemy.orm import Session

from cloudlet.actions import service as engine
from cloudlet.billing import pricing
from cloudlet.billing import service as billing
from cloudlet.billing.schemas import SubscriptionCreate, SubscriptionRead
from cloudlet.catalog import service as catalog
from cloudlet.catalog.schemas import PlanRead, RegionRead
from cloudlet.config import Settings
from cloudlet.drivers.base import HOSTNAME_PATTERN, DriverError, GuestNetwork, GuestNotFound, GuestSpec, GuestState
from cloudlet.images import service as images
from cloudlet.instances import actions, queries, repository, sshkeys
from cloudlet.instances.cpu_meter import CpuMeter
from cloudlet.instances.models import Action, ActionStatus, Instance, InstanceStatus, SshKey
from cloudlet.instances.schemas import (
    CREATE_TASKS,
    DELETE_TASKS,
    REACTIVATE_TASKS,
    SUSPEND_TASKS,
    ActionRead,
    Allowed,
    Command,
    ConsoleLog,
    CreatedInstance,
    DeletionMode,
    DeletionRead,
    InstanceCreate,
    InstancePage,
    InstanceRead,
    InstanceSummary,
    ReactivationRead,
    RemoteState,
    SshKeyCreate,
    SshKeyRead,
)
from cloudlet.kit import clock, money
from cloudlet.kit.errors import Conflict, Forbidden, Invalid, NotFound, Unavailable
from cloudlet.kit.secretbox import SecretBox
from cloudlet.networking import service as networking
from cloudlet.networking.schemas import IpFamily
from cloudlet.nodes import service as nodes
from cloudlet.nodes.models import NodeStatus
from cloudlet.projects import service as projects
from cloudlet.projects.schemas import Actor
from cloudlet.webhooks import service as webhooks

PASSWORD_MIN, PASSWORD_MAX = 8, 72
GENERATED_PASSWORD_LENGTH = 20


@lru_cache(maxsize=4)
def _box(master_secret: str) -> SecretBox:
    return SecretBox(master_secret, "instances")


def seal(settings: Settings, plaintext: str) -> str:
    """A secret of an instance (root password, webhook secret) as it is stored."""
    return _box(settings.jwt_secret).seal(plaintext)


def unseal(settings: Settings, sealed: str) -> str:
    """The plaintext of a stored instance secret."""
    return _box(settings.jwt_secret).open(sealed)


# --- input rules ---------------------------------------------------------------------------------


def check_root_password(password: str) -> None:
    """CyberPanel's rules: 8 to 72 characters with letters and digits (its error codes)."""
    if len(password) < PASSWORD_MIN:
        raise Invalid("root_password", f"The root password must be at least {PASSWORD_MIN} characters.",
                      code="PASSWORD_TOO_SHORT")
    if len(password) > PASSWORD_MAX:
        raise Invalid("root_password", f"The root password must not exceed {PASSWORD_MAX} characters.",
                      code="PASSWORD_TOO_LONG")
    if not (any(c.isalpha() for c in password) and any(c.isdigit() for c in password)):
        raise Invalid("root_password", "The root password must contain letters and numbers.", code="PASSWORD_WEAK")
    if any(c in password for c in "\n\r\0") or not password.isprintable():
        raise Invalid("root_password", "The root password must be printable characters on one line.",
                      code="PASSWORD_WEAK")


def generate_password() -> str:
    """A random root password that meets the rules."""
    alphabet = string.ascii_letters + string.digits
    while True:
        candidate = "".join(secrets.choice(alphabet) for _ in range(GENERATED_PASSWORD_LENGTH))
        if any(c.isalpha() for c in candidate) and any(c.isdigit() for c in candidate):
            return candidate


def check_hostname(hostname: str) -> str:
    """A host name as guests accept it (RFC 1123 labels), lower-cased; Invalid otherwise."""
    name = hostname.strip().rstrip(".").lower()
    if not name or len(name) > 253 or not HOSTNAME_PATTERN.match(name):
        raise Invalid("hostname", "The hostname must be letters, digits, dashes and dots, like my-server.example.com.",
                      code="INVALID_HOSTNAME")
    return name


# --- reading -------------------------------------------------------------------------------------


def _read(session: Session, row: Instance) -> InstanceRead:
    # after a write: the read model of the row as the write left it (flushed), in one statement
    return queries.instance_read(session, row.id)


def get_instance(session: Session, actor: Actor, ident: int | str) -> InstanceRead:
    """One instance of a project the actor is in (404 for any other, and for deleted ones)."""
    return queries.get_instance(session, actor, ident)


def list_instances(session: Session, actor: Actor, *, project_id: int | None = None,
                   statuses: list[InstanceStatus] | None = None, region: str | None = None,
                   limit: int | None = None, offset: int = 0) -> InstancePage:
    """The actor's instances (of one project when named), newest first, deleted ones left out."""
    return queries.list_instances(session, actor, project_id=project_id, statuses=statuses, region=region,
                                  limit=limit, offset=offset)


def summary(session: Session, actor: Actor) -> InstanceSummary:
    """Counts by status and region, and the monthly list price of what runs."""
    page = list_instances(session, actor)
    return InstanceSummary(total=page.total, by_status=dict(Counter(i.status.value for i in page.items)),
                           by_region=dict(Counter(i.region_code for i in page.items)),
                           monthly_cost_cents=sum(i.monthly_price_cents for i in page.items))


def deployment(session: Session, actor: Actor, ident: int | str) -> tuple[InstanceRead, ActionRead]:
    """An instance and its newest create action with its tasks, read from one snapshot (one statement)."""
    found, build = queries.build_of(session, actor, ident)
    if build is None:
        raise NotFound("action", code="VPS_NOT_FOUND")
    return found, build


def rename_instance(session: Session, actor: Actor, ident: int | str, name: str) -> InstanceRead:
    """Change an instance's display name (the hostname stays what the guest was built with)."""
    row = actions.instance_of(session, actor, ident, lock=True)
    cleaned = name.strip()
    if not cleaned or len(cleaned) > 200:
        raise Invalid("name", "A name is 1 to 200 characters.")
    row.name = cleaned
    session.flush()
    return _read(session, row)


def list_actions(session: Session, actor: Actor, ident: int | str) -> list[ActionRead]:
    """An instance's actions with their tasks, newest first."""
    found = actions.instance_of(session, actor, ident, include_deleted=True)
    return [actions.action_read(session, a) for a in repository.actions(session, found.id)]


def get_action(session: Session, actor: Actor, ident: int | str, action_id: int) -> ActionRead:
    """One action of an instance."""
    found = actions.instance_of(session, actor, ident, include_deleted=True)
    action = repository.action(session, action_id)
    if action is None or action.instance_id != found.id:
        raise NotFound("action", action_id)
    return actions.action_read(session, action)


def latest_action(session: Session, actor: Actor, ident: int | str, command: Command | None = None) -> ActionRead:
    """The newest action of an instance (of one command when given): how a deployment goes."""
    found = actions.instance_of(session, actor, ident, include_deleted=True)
    action = repository.latest_action(session, found.id, command.value if command else None)
    if action is None:
        raise NotFound("action", code="VPS_NOT_FOUND")
    return actions.action_read(session, action)


# --- what the workflows record ------------------------------------------------------------------


def _seconds(action: Action) -> int:
    return int(((action.finished_at or clock.now()) - action.started_at).total_seconds())


def _notify(session: Session, settings: Settings, row: Instance, action: Action, *, ok: bool) -> None:
    if row.webhook_url is None:
        return
    secret = unseal(settings, row.webhook_secret) if row.webhook_secret else None
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
    engine.finish(action, row, ActionStatus.SUCCESS)
    row.status, row.status_reason, row.provisioned_at = InstanceStatus.RUNNING, "", clock.now()
    session.flush()
    _notify(session, settings, row, action, ok=True)


def release_addresses(session: Session, instance_id: int) -> str:
    """Give back the instance's addresses (doing it again frees nothing); says which were freed."""
    row = actions.instance_row(session, instance_id, lock=True)
    freed = networking.release(session, row.uuid)
    row.ipv4 = row.ipv6 = None
    session.flush()
    return " ".join(freed) or "no address was held"


def release_capacity(session: Session, instance_id: int) -> str:
    """Give the instance's room back to its node (once); says how much."""
    row = actions.instance_row(session, instance_id)
    if row.reservation_id is None:
        return "no capacity was held"
    held = nodes.release(session, row.reservation_id)
    return (f"{held.resources.vcpu} vCPU, {held.resources.memory_mib} MiB, {held.resources.disk_gib} GiB "
            f"back to node {held.node_name}")


def fail_create(session: Session, settings: Settings, action_id: int, reason: str) -> None:
    """After a failed build whose guest was removed: free the address and capacity, refund in full, tell the webhook."""
    action, row = actions.locked(session, action_id)
    if action.status is not ActionStatus.RUNNING:
        return
    release_addresses(session, row.id)
    release_capacity(session, row.id)
    sub = billing.subscription_for(session, row.uuid)
    if sub is not None:
        billing.void_subscription(session, sub.id)
    engine.finish(action, row, ActionStatus.ERROR, reason[:4000])
    row.status, row.status_reason = InstanceStatus.ERROR, reason[:2000]
    session.flush()
    _notify(session, settings, row, action, ok=False)


def finish_delete(session: Session, action_id: int) -> None:
    """The last task of a delete: the guest, its disk, its address and its room are gone."""
    action, row = actions.locked(session, action_id)
    if action.status is not ActionStatus.RUNNING:
        return
    engine.complete_task(session, action_id, "finalize")
    engine.finish(action, row, ActionStatus.SUCCESS)
    row.status, row.deleted_at, row.delete_at = InstanceStatus.DELETED, clock.now(), None
    row.root_password = row.webhook_secret = None
    session.flush()


def fail_delete(session: Session, action_id: int, reason: str) -> None:
    """A delete that could not finish (the node did not answer): the instance shows error, to be deleted again."""
    action, row = actions.locked(session, action_id)
    if action.status is not ActionStatus.RUNNING:
        return
    engine.finish(action, row, ActionStatus.ERROR, reason[:4000])
    row.status, row.status_reason = InstanceStatus.ERROR, f"deletion failed: {reason}"[:2000]
    session.flush()


# --- create --------------------------------------------------------------------------------------


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
    hostname = check_hostname(data.hostname)
    plan = _plan_for(session, data.plan, data.category)
    region = _region_for(session, data.region, plan)
    try:
        template = catalog.template_for_plan(session, data.template, plan.id)
    except NotFound:
        raise Invalid("os_template", f"There is no OS template {data.template!r}.", code="INVALID_TEMPLATE") from None
    image = images.image_for_template(session, template.id)
    generated = data.root_password is None
    password = generate_password() if data.root_password is None else data.root_password
    check_root_password(password)
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
                   root_password=seal(settings, password), ssh_keys=keys, webhook_url=data.webhook_url,
                   webhook_secret=seal(settings, data.webhook_secret) if data.webhook_secret else None,
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
    return CreatedInstance(instance=_read(session, row), action=actions.action_read(session, action),
                           charged_cents=charge.amount_cents, root_password=password if generated else None)


def _optional_ipv6(session: Session, region: str, owner: str, hostname: str) -> str | None:
    # IPv6 is given where the region has a v6 pool; its absence is no reason to refuse a server
    if not any(p.version == 6 and p.is_active for p in networking.list_pools(session, region)):
        return None
    return networking.allocate(session, region, owner, IpFamily.IPV6, hostname=hostname).address


def guest_spec(session: Session, settings: Settings, instance_id: int) -> GuestSpec:
    """What the node needs to build an instance's guest (the sealed password opened)."""
    row = actions.instance_row(session, instance_id)
    held = {a.family: a for a in networking.allocations(session, row.uuid)}
    v4, v6 = held.get(IpFamily.IPV4), held.get(IpFamily.IPV6)
    network = None
    if v4 is not None:
        network = GuestNetwork(address=f"{v4.address}/{v4.prefix_length}", gateway=v4.gateway,
                               address6=f"{v6.address}/{v6.prefix_length}" if v6 else None,
                               gateway6=v6.gateway if v6 else None)
    return GuestSpec(name=row.guest_name, image=row.image, vcpus=row.vcpus, memory_mib=row.memory_mib,
                     disk_gib=row.disk_gib, hostname=row.hostname,
                     root_password=unseal(settings, row.root_password) if row.root_password else None,
                     ssh_authorized_keys=tuple(row.ssh_keys), network=network, instance_id=row.uuid)



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


# --- delete --------------------------------------------------------------------------------------


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
        return DeletionRead(instance=_read(session, row), mode=mode, refund_cents=0, currency=currency,
                            delete_at=row.delete_at)
    refund = _terminate(session, sub)
    begin_delete(session, row)
    return DeletionRead(instance=_read(session, row), mode=mode, refund_cents=refund, currency=currency,
                        delete_at=None)


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
    return _read(session, row)


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
    action, row = actions.locked(session, action_id)
    if action.status is not ActionStatus.RUNNING:
        return
    if reason is None:
        engine.complete_task(session, action_id, "finalize")
    engine.finish(action, row, ActionStatus.SUCCESS if reason is None else ActionStatus.ERROR, reason)
    row.status = InstanceStatus.SUSPENDED
    row.status_reason = "suspended: the renewal could not be paid" + (f" ({reason})" if reason else "")
    session.flush()


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
    return ReactivationRead(instance=_read(session, row), action=actions.action_read(session, action),
                            charged_cents=charge.amount_cents)


def finish_reactivate(session: Session, action_id: int, reason: str | None = None) -> None:
    """The server runs again (or failed to boot: it shows error, paid, to be restarted or reinstalled)."""
    action, row = actions.locked(session, action_id)
    if action.status is not ActionStatus.RUNNING:
        return
    if reason is None:
        engine.complete_task(session, action_id, "finalize")
    engine.finish(action, row, ActionStatus.SUCCESS if reason is None else ActionStatus.ERROR, reason)
    row.status = InstanceStatus.RUNNING if reason is None else InstanceStatus.ERROR
    row.status_reason = "" if reason is None else f"reactivation failed: {reason}"[:2000]
    session.flush()


# --- SSH keys ------------------------------------------------------------------------------------


def _key_read(row: SshKey) -> SshKeyRead:
    return SshKeyRead.model_validate(row)


def list_ssh_keys(session: Session, actor: Actor, project_id: int | None = None) -> list[SshKeyRead]:
    """The keys kept in the actor's projects (or one of them)."""
    return [_key_read(k) for k in repository.ssh_keys(session, actions.projects_in_reach(session, actor, project_id))]


def add_ssh_key(session: Session, actor: Actor, data: SshKeyCreate, *, actor_project: int,
                project_id: int | None = None) -> SshKeyRead:
    """Keep a public key (OpenSSH format, checked) in a project; the same key twice is a 409."""
    target = project_id if project_id is not None else actor_project
    projects.require_membership(session, actor.user.id, target, fence=actor.project_scope)
    parsed = sshkeys.parse(data.public_key, "public_key")
    if repository.ssh_key_by_fingerprint(session, target, parsed.fingerprint) is not None:
        raise Conflict("This key is already kept in the project.", code="SSH_KEY_EXISTS")
    row = SshKey(project_id=target, name=data.name.strip(), public_key=parsed.line, fingerprint=parsed.fingerprint,
                 created_at=clock.now())
    repository.insert(session, row)
    return _key_read(row)


def delete_ssh_key(session: Session, actor: Actor, key_id: int) -> None:
    """Forget a kept key (servers built with it keep it)."""
    row = repository.ssh_key(session, key_id)
    if row is None or row.project_id not in actions.projects_in_reach(session, actor):
        raise NotFound("SSH key", key_id)
    repository.delete(session, row)


# --- live state ----------------------------------------------------------------------------------

_CPU = CpuMeter()  # this process's last CPU sample of each guest it was asked about


def remote_state(session: Session, actor: Actor, ident: int | str) -> RemoteState:
    """What the node says of the guest now: power state, CPU use since the last reading, memory."""
    row = actions.instance_of(session, actor, ident)
    if row.node_id is None:
        return RemoteState(state="unknown")
    node = nodes.get_node(session, row.node_id)
    key = f"{node.uri} {row.guest_name}"
    try:
        driver = nodes.connect(node.uri)
        state = driver.state(row.guest_name)
        sample = driver.stats(row.guest_name)
        if state is not GuestState.RUNNING:
            _CPU.forget(key)
            return RemoteState(state=state.value, cpu_percent=0.0, memory_total_kib=sample.memory_mib * 1024)
        cpu = _CPU.percent(key, sample, lambda: driver.stats(row.guest_name))
    except GuestNotFound:
        return RemoteState(state="missing")
    except DriverError:
        return RemoteState(state="unknown")
    total = sample.memory_mib * 1024
    free = total - sample.memory_used_mib * 1024 if sample.memory_used_mib is not None else None
    return RemoteState(state=state.value, cpu_percent=cpu, memory_total_kib=total, memory_free_kib=free)


def console_log(session: Session, actor: Actor, ident: int | str) -> ConsoleLog:
    """The guest's serial console since it last started, as its node keeps it."""
    return _serial_log(session, actions.instance_of(session, actor, ident), history=False)


def console_history(session: Session, actor: Actor, ident: int | str) -> ConsoleLog:
    """The guest's serial console across its boots, oldest first (the node keeps the last MiB; see
    HypervisorDriver.console_history): the boots before the current one, then the current one's log."""
    return _serial_log(session, actions.instance_of(session, actor, ident), history=True)


def _serial_log(session: Session, row: Instance, *, history: bool) -> ConsoleLog:
    if row.node_id is None:
        raise Conflict("The instance has no guest yet.", code="NO_GUEST")
    node = nodes.get_node(session, row.node_id)
    try:
        driver = nodes.connect(node.uri)
        output = driver.console_history(row.guest_name) if history else driver.console_output(row.guest_name)
    except GuestNotFound:
        raise Conflict("The instance's guest does not exist (yet, or any more).", code="NO_GUEST") from None
    except DriverError as error:
        raise Unavailable(f"Node {node.name} did not answer: {error}", code="NODE_UNREACHABLE") from None
    return ConsoleLog(instance_uuid=row.uuid, text=output.text, truncated=output.truncated)


def clear_console_log(session: Session, actor: Actor, ident: int | str, *, operator: bool) -> None:
    """Forget what the instance's guest printed, past boots and the current one's log: an operator's right.

    An operator reaches any project's instance. Anyone else gets 404 for an instance out of their reach (as
    everywhere, so nothing is told of it) and 403 for one in reach. Refused (409) while an action holds the
    instance: it may be waiting for the boot's readiness line, which clearing would erase. An instance without a
    guest (not built yet, or gone) has nothing to forget, which is no error.
    """
    if not operator:
        actions.instance_of(session, actor, ident)
        raise Forbidden("Administrator access is required.", code="ADMIN_REQUIRED")
    row = repository.instance(session, actions.parse_ident(ident), lock=True)  # no action begins meanwhile
    if row is None or row.status is InstanceStatus.DELETED:
        raise NotFound("instance", ident, code="VPS_NOT_FOUND")
    if row.locked_action_id is not None:
        raise Conflict("Another action is in progress on this instance; wait until it finishes.",
                       code="INSTANCE_BUSY")
    if row.node_id is None:
        return
    node = nodes.get_node(session, row.node_id)
    try:
        nodes.connect(node.uri).clear_console(row.guest_name)
    except GuestNotFound:
        return
    except DriverError as error:
        raise Unavailable(f"Node {node.name} did not answer: {error}", code="NODE_UNREACHABLE") from None
