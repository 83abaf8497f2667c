"""The instances: input rules, reading, SSH keys, live state and console; and what the procedures share
(the sealed secrets, what a guest is built from, giving back its addresses and room).

Each procedure, with its request, its tasks and how it ends, has its own file: build.py (create),
deletion.py, suspension.py (suspend and reactivate), power.py, rebuild.py and copies.py (snapshots and
backups); workflows.py holds the sweep, the reconciler and the ending of stale actions.
"""

from __future__ import annotations

import secrets
import string
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from functools import lru_cache

from sqlalchemy.orm import Session

from cloudlet.catalog import service as catalog
from cloudlet.config import Settings
from cloudlet.drivers.base import HOSTNAME_PATTERN, DriverError, GuestNetwork, GuestNotFound, GuestSpec, GuestState
from cloudlet.images.models import ImageCapability
from cloudlet.instances import actions, queries, repository
from cloudlet.instances.cpu_meter import CpuMeter
from cloudlet.instances.models import Instance, InstanceStatus, SshKey
from cloudlet.instances.schemas import (
    ActionRead,
    Command,
    ConsoleLog,
    InstancePage,
    InstanceRead,
    InstanceSummary,
    RemoteState,
    SshKeyCreate,
    SshKeyRead,
)
from cloudlet.kit import clock, locks, sshkeys
from cloudlet.kit.errors import Conflict, Forbidden, Invalid, NotFound, Unavailable
from cloudlet.kit.secretbox import SecretBox
from cloudlet.networking import service as networking
from cloudlet.networking.schemas import IpFamily
from cloudlet.nodes import service as nodes
from cloudlet.projects import service as projects
from cloudlet.projects.schemas import Actor
from cloudlet.sshca import service as sshca

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


# --- what the procedures share -------------------------------------------------------------------


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
    can = actions.image_capabilities(session, row)
    trusts_ca = ImageCapability.SSH in can and ImageCapability.CLOUD_INIT in can  # cloud-init writes the files
    return GuestSpec(name=row.guest_name, image=row.image, vcpus=row.vcpus, memory_mib=row.memory_mib,
                     disk_gib=row.disk_gib, hostname=row.hostname,
                     root_password=unseal(settings, row.root_password) if row.root_password else None,
                     ssh_authorized_keys=tuple(row.ssh_keys), network=network, instance_id=row.uuid,
                     ssh_trust=sshca.guest_trust(session, row.project_id) if trusts_ca else None,
                     bandwidth_mbit=network_cap(settings, catalog.get_plan(session, row.plan_id).bandwidth_mbit,
                                                row.throttled_until))


def network_cap(settings: Settings, plan_mbit: int | None, throttled_until: datetime | None) -> int | None:
    """The cap a server's NIC should have now: the transfer throttle's until the month it was throttled in ends
    (never above the plan's own cap), else its plan's."""
    if throttled_until is not None and clock.now() < throttled_until:
        return min(settings.transfer_throttle_mbit, plan_mbit or settings.transfer_throttle_mbit)
    return plan_mbit


def network_caps(session: Session, settings: Settings, uuids: Iterable[str]) -> dict[str, int]:
    """The cap each of these servers' NICs should have now (network_cap), for those that have one."""
    caps = {uuid: network_cap(settings, mbit, until) for uuid, mbit, until in queries.plan_caps(session, uuids)}
    return {uuid: cap for uuid, cap in caps.items() if cap is not None}


def bandwidth_of(session: Session, instance_id: int) -> tuple[int | None, datetime | None]:
    """A server's plan's network cap and until when the transfer throttle holds it (None: it does not)."""
    row = actions.instance_row(session, instance_id)
    return catalog.get_plan(session, row.plan_id).bandwidth_mbit, row.throttled_until


def set_throttle(session: Session, instance_id: int, until: datetime | None) -> None:
    """Hold a server's NIC at the transfer throttle until a moment (the next month's start), or (None) no more."""
    actions.instance_row(session, instance_id, lock=True).throttled_until = until
    session.flush()


def node_of(session: Session, uuid: str) -> int | None:
    """The node an instance is placed on (None before placement, or for no such instance)."""
    row = repository.instance(session, uuid)
    return None if row is None or row.status is InstanceStatus.DELETED else row.node_id


def placed_on(session: Session, node_id: int) -> list[str]:
    """The public ids of the instances that have a guest on a node."""
    return [row.uuid for row in repository.on_node(session, node_id)]


# --- SSH keys ------------------------------------------------------------------------------------


def _key_read(row: SshKey) -> SshKeyRead:
    return SshKeyRead.model_validate(row)


def list_ssh_keys(session: Session, actor: Actor, project_id: int | None = None) -> list[SshKeyRead]:
    """The keys kept in the actor's projects (or one of them)."""
    return [_key_read(k) for k in repository.ssh_keys(session, actions.projects_in_reach(session, actor, project_id))]


def add_ssh_key(session: Session, actor: Actor, data: SshKeyCreate, *, actor_project: int,
                project_id: int | None = None, unique_name: bool = False, make_default: bool = False) -> SshKeyRead:
    """Keep a public key (OpenSSH format, checked) in a project; the same key twice is a 409.

    `unique_name` refuses (409) a name another key of the project has, for surfaces that address keys by
    name (Shardlyn's /v1/settings/ssh-keys/{name}); `make_default` makes the new key the project's default.
    """
    target = project_id if project_id is not None else actor_project
    projects.require_membership(session, actor.user.id, target, fence=actor.project_scope)
    parsed = sshkeys.parse(data.public_key, "public_key")
    name = data.name.strip()
    if not name:
        raise Invalid("name", "A key's name cannot be blank.")
    if repository.ssh_key_by_fingerprint(session, target, parsed.fingerprint) is not None:
        raise Conflict("This key is already kept in the project.", code="SSH_KEY_EXISTS")
    if unique_name and repository.ssh_keys_named(session, target, name):
        raise Conflict(f"The project already keeps a key named {name!r}.", code="SSH_KEY_NAME_EXISTS")
    if make_default:
        locks.hold(session, f"ssh-default-key:{target}")
        repository.clear_default_ssh_key(session, target)
    row = SshKey(project_id=target, name=name, public_key=parsed.line, fingerprint=parsed.fingerprint,
                 is_default=make_default, created_at=clock.now())
    repository.insert(session, row)
    return _key_read(row)


def delete_ssh_key(session: Session, actor: Actor, key_id: int) -> None:
    """Forget a kept key (servers built with it keep it)."""
    row = repository.ssh_key(session, key_id)
    if row is None or row.project_id not in actions.projects_in_reach(session, actor):
        raise NotFound("SSH key", key_id)
    repository.delete(session, row)


def _key_named(session: Session, actor: Actor, project_id: int, name: str) -> SshKey:
    projects.require_membership(session, actor.user_id, project_id, fence=actor.project_scope)
    found = repository.ssh_keys_named(session, project_id, name)
    if not found:
        raise NotFound("SSH key", name)
    if len(found) > 1:
        raise Conflict(f"{len(found)} keys of the project are named {name!r}; remove or rename them by id "
                       "at /api/ssh-keys.", code="SSH_KEY_NAME_AMBIGUOUS")
    return found[0]


def delete_ssh_key_named(session: Session, actor: Actor, project_id: int, name: str) -> None:
    """Forget a project's key by its name (404 when none has it, 409 when several do); a default goes with it."""
    repository.delete(session, _key_named(session, actor, project_id, name))


def set_default_ssh_key(session: Session, actor: Actor, project_id: int, name: str) -> SshKeyRead:
    """Make the project's key of this name its default, the one a new server gets when its order names none."""
    row = _key_named(session, actor, project_id, name)
    locks.hold(session, f"ssh-default-key:{project_id}")  # two at once cannot leave two defaults
    repository.clear_default_ssh_key(session, project_id)
    row.is_default = True
    session.flush()
    return _key_read(row)


def default_ssh_key(session: Session, project_id: int) -> SshKeyRead | None:
    """The project's default key, if it has one."""
    row = repository.default_ssh_key(session, project_id)
    return None if row is None else _key_read(row)


# --- live state ----------------------------------------------------------------------------------

_CPU = CpuMeter()  # this process's last CPU sample of each guest it was asked about


def remote_state(session: Session, drivers: nodes.Drivers, actor: Actor, ident: int | str) -> RemoteState:
    """What the node says of the guest now: power state, CPU use since the last reading, memory."""
    row = actions.instance_of(session, actor, ident)
    if row.node_id is None:
        return RemoteState(state="unknown")
    node = nodes.get_node(session, row.node_id)
    key = f"{node.uri} {row.guest_name}"
    try:
        driver = drivers.connect(node.uri)
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


def console_log(session: Session, drivers: nodes.Drivers, actor: Actor, ident: int | str) -> ConsoleLog:
    """The guest's serial console since it last started, as its node keeps it."""
    return _serial_log(session, drivers, actions.instance_of(session, actor, ident), history=False)


def console_history(session: Session, drivers: nodes.Drivers, actor: Actor, ident: int | str) -> ConsoleLog:
    """The guest's serial console across its boots, oldest first (the node keeps the last MiB; see
    HypervisorDriver.console_history): the boots before the current one, then the current one's log."""
    return _serial_log(session, drivers, actions.instance_of(session, actor, ident), history=True)


def _serial_log(session: Session, drivers: nodes.Drivers, row: Instance, *, history: bool) -> ConsoleLog:
    if row.node_id is None:
        raise Conflict("The instance has no guest yet.", code="NO_GUEST")
    node = nodes.get_node(session, row.node_id)
    try:
        driver = drivers.connect(node.uri)
        output = driver.console_history(row.guest_name) if history else driver.console_output(row.guest_name)
    except GuestNotFound:
        raise Conflict("The instance's guest does not exist (yet, or any more).", code="NO_GUEST") from None
    except DriverError as error:
        raise Unavailable(f"Node {node.name} did not answer: {error}", code="NODE_UNREACHABLE") from None
    return ConsoleLog(instance_uuid=row.uuid, text=output.text, truncated=output.truncated)


def clear_console_log(session: Session, drivers: nodes.Drivers, actor: Actor, ident: int | str, *,
                      operator: bool) -> None:
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
        drivers.connect(node.uri).clear_console(row.guest_name)
    except GuestNotFound:
        return
    except DriverError as error:
        raise Unavailable(f"Node {node.name} did not answer: {error}", code="NODE_UNREACHABLE") from None
