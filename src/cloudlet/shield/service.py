"""Shield: every address of a customer's servers is an IP record with a firewall (inbound rules in priority order,
default policies), enforced by the address's node (drivers' apply_firewalls) and shown `pending` until it is.

A change bumps the firewall's revision and opens, in the same transaction, one `firewall_push` action on its
node (once per node and transaction): once the request commits, that action gives the node its whole table
(shield/push.py); a scheduled round gives every node its table again whenever what it should enforce changed
since (a node that missed a push, a new guest; shield/workflows.py).
"""

from __future__ import annotations

import ipaddress

from sqlalchemy.orm import Session

from cloudlet.actions import service as engine
from cloudlet.config import Settings
from cloudlet.drivers.base import (
    AddressFirewall,
    DriverError,
    FirewallAction,
    FirewallProtocol,
    FirewallRuleSpec,
    RateLimit,
    RateUnit,
)
from cloudlet.instances import service as instances
from cloudlet.instances.schemas import InstanceRead
from cloudlet.kit import clock
from cloudlet.kit.errors import Conflict, Invalid, NotFound
from cloudlet.kit.port_ranges import checked_range
from cloudlet.metrics import service as metrics
from cloudlet.networking import service as networking
from cloudlet.networking.schemas import Allocation
from cloudlet.nodes import service as nodes
from cloudlet.projects.schemas import Actor
from cloudlet.shield import repository
from cloudlet.shield.models import AddressFirewallRow, FirewallRule
from cloudlet.shield.schemas import (
    BandwidthNow,
    Hits,
    IpProfileRead,
    IpRecordRead,
    Policy,
    PolicyUpdate,
    PushState,
    RuleCreate,
    RuleRead,
    RuleUpdate,
)

CHANGED_NODES = "cloudlet_shield_nodes"  # session.info key: node id -> the push action this transaction opened
PUSH_COMMAND = "firewall_push"
PUSH_TASKS = ("firewall_apply", "firewall_record")  # the last is recorded by the push's conclusion
PRIORITY_STEP = 10
_PORTED = (FirewallProtocol.TCP, FirewallProtocol.UDP)


# --- reading -----------------------------------------------------------------------------------------------


def _state(row: AddressFirewallRow | None, revision: int | None = None) -> tuple[PushState, str | None]:
    """Whether the node enforces the firewall (as of revision, or its latest)."""
    if row is None:
        return PushState.ACTIVE, None
    wanted = row.revision if revision is None else revision
    if row.applied_revision >= wanted:
        return PushState.ACTIVE, None
    if row.push_error:
        return PushState.ERROR, row.push_error
    return PushState.PENDING, None


def _rule_read(rule: FirewallRule, row: AddressFirewallRow) -> RuleRead:
    return RuleRead(id=rule.id, priority=rule.priority, action=rule.action, protocol=rule.protocol,
                    src_cidr=rule.src_cidr, dst_port=rule.port_from,
                    dst_port_end=rule.port_to if rule.port_to != rule.port_from else None,
                    rate_limit=rule.rate_limit, rate_unit=rule.rate_unit, status=_state(row, rule.revision)[0],
                    created_at=rule.created_at, updated_at=rule.updated_at)


def _profile(allocation: Allocation, instance: InstanceRead, row: AddressFirewallRow | None,
             rules: list[FirewallRule]) -> IpProfileRead:
    state, error = _state(row)
    policy = Policy(default_in=row.default_in if row else FirewallAction.ALLOW,
                    default_out=row.default_out if row else FirewallAction.ALLOW)
    version = ipaddress.ip_address(allocation.address).version
    return IpProfileRead(id=allocation.id, ip=allocation.address, version=version, instance_id=instance.uuid,
                         instance_name=instance.name, rdns=allocation.rdns, rules_count=len(rules), policy=policy,
                         status=state, error=error,
                         rules=[_rule_read(rule, row) for rule in rules] if row else [])


def ip_record(session: Session, actor: Actor, allocation_id: int) -> tuple[Allocation, InstanceRead]:
    """An address of the actor's servers and its server (another project's is not found)."""
    try:
        allocation = networking.allocation_by_id(session, allocation_id)
        if not allocation.owner:
            raise NotFound("IP record", allocation_id)
        return allocation, instances.get_instance(session, actor, allocation.owner)
    except NotFound:
        raise NotFound("IP record", allocation_id) from None


def list_ips(session: Session, actor: Actor) -> list[IpRecordRead]:
    """Every address of the actor's servers with its firewall's summary, oldest address first."""
    servers = {instance.uuid: instance for instance in instances.list_instances(session, actor).items}
    held = [(allocation, servers[allocation.owner])
            for allocation in networking.allocations_of(session, list(servers))]
    rows = repository.firewalls(session, [allocation.id for allocation, _ in held])
    rules = repository.rules(session, [row.id for row in rows.values()])
    rates = metrics.latest_rates(session, [instance.id for instance in servers.values()], clock.now())
    found = []
    for allocation, instance in held:
        row = rows.get(allocation.id)
        profile = _profile(allocation, instance, row, rules[row.id] if row else [])
        rate = rates.get(instance.id)
        found.append(IpRecordRead(**profile.model_dump(exclude={"rules", "bandwidth"}), bandwidth=BandwidthNow(
            in_bps=round(rate.rx_bps * 8, 1), out_bps=round(rate.tx_bps * 8, 1)) if rate else None))
    return found


def get_ip(session: Session, drivers: nodes.Drivers, actor: Actor, allocation_id: int) -> IpProfileRead:
    """One address with its policy and rules, and what each matched when its node enforces the latest change."""
    allocation, instance = ip_record(session, actor, allocation_id)
    row = repository.firewall(session, allocation_id)
    profile = _profile(allocation, instance, row, repository.rules(session, [row.id])[row.id] if row else [])
    node_id = instances.node_of(session, instance.uuid)
    if row is None or profile.status is not PushState.ACTIVE or node_id is None:
        return profile
    try:
        counted = drivers.connect(nodes.get_node(session, node_id).uri).firewall_hits().get(allocation.address)
    except DriverError:
        return profile  # the figures are a courtesy: a node that does not answer now leaves them out
    if counted is None or len(counted.rules) != len(profile.rules):
        return profile
    rules = [rule.model_copy(update={"hits": Hits(packets=p, bytes=b)})
             for rule, (p, b) in zip(profile.rules, counted.rules, strict=True)]
    return profile.model_copy(update={"rules": rules,
                                      "policy_hits": Hits(packets=counted.policy[0], bytes=counted.policy[1])})


# --- changing ----------------------------------------------------------------------------------------------


def _changing(session: Session, allocation: Allocation, instance: InstanceRead) -> AddressFirewallRow:
    """The address's firewall, made or locked, at its next revision; its node queued for a push."""
    row = repository.firewall(session, allocation.id, lock=True)
    if row is None:
        row = AddressFirewallRow(allocation_id=allocation.id, revision=1, applied_revision=0, push_error="",
                                 created_at=clock.now())
        repository.add(session, row)
    else:
        row.revision += 1
        row.push_error = ""
    node = instances.node_of(session, instance.uuid)
    pushes: dict[int, int] = session.info.setdefault(CHANGED_NODES, {})
    if node is not None and node not in pushes:
        pushes[node] = engine.begin_on_node(session, node, PUSH_COMMAND, PUSH_TASKS).id
    return row


def _source(text: str | None, version: int) -> str:
    if text is None or not text.strip():
        return "0.0.0.0/0" if version == 4 else "::/0"
    try:
        network = ipaddress.ip_network(text.strip())
    except ValueError:
        raise Invalid("src_cidr", f"{text!r} is not a network in CIDR form (for example 203.0.113.0/24, with no "
                                  "bits set past the prefix).", code="INVALID_CIDR") from None
    if network.version != version:
        raise Invalid("src_cidr", f"{network} is IPv{network.version}; this address is IPv{version}.",
                      code="INVALID_CIDR")
    return str(network)


def _ports(protocol: FirewallProtocol, start: int | None, end: int | None) -> tuple[int | None, int | None]:
    return checked_range(start, end, ported=protocol in _PORTED, field="dst_port", end_field="dst_port_end")


def _rate(action: FirewallAction, per_second: int | None, unit: RateUnit | None) -> tuple[int | None, RateUnit | None]:
    if per_second is None:
        if unit is not None:
            raise Invalid("rate_unit", "rate_unit needs rate_limit.", code="INVALID_RATE_LIMIT")
        return None, None
    if action is not FirewallAction.ALLOW:
        raise Invalid("rate_limit", "Only an allow rule has a rate limit: a block rule lets nothing through.",
                      code="INVALID_RATE_LIMIT")
    return per_second, unit or RateUnit.CONNECTIONS


def _check_duplicate(session: Session, row: AddressFirewallRow, rule: FirewallRule) -> None:
    for other in repository.rules(session, [row.id])[row.id]:
        same = (other.action, other.protocol, other.src_cidr, other.port_from, other.port_to, other.rate_limit,
                other.rate_unit) == (rule.action, rule.protocol, rule.src_cidr, rule.port_from, rule.port_to,
                                     rule.rate_limit, rule.rate_unit)
        if same and other.id != rule.id:
            raise Conflict(f"The address has this rule already (rule {other.id}).", code="RULE_EXISTS")


def add_rule(session: Session, settings: Settings, actor: Actor, allocation_id: int, data: RuleCreate) -> RuleRead:
    """Add an inbound rule; its node enforces it shortly (`pending` until then)."""
    allocation, instance = ip_record(session, actor, allocation_id)
    version = ipaddress.ip_address(allocation.address).version
    source = _source(data.src_cidr, version)
    start, end = _ports(data.protocol, data.dst_port, data.dst_port_end)
    per_second, unit = _rate(data.action, data.rate_limit, data.rate_unit)
    row = _changing(session, allocation, instance)
    existing = repository.rules(session, [row.id])[row.id]
    if len(existing) >= settings.shield_rules_per_ip:
        raise Conflict(f"An address has at most {settings.shield_rules_per_ip} rules.", code="RULE_LIMIT")
    priority = data.priority if data.priority is not None else (
        max((rule.priority for rule in existing), default=0) + PRIORITY_STEP)
    rule = FirewallRule(firewall_id=row.id, priority=priority, action=data.action, protocol=data.protocol,
                        src_cidr=source, port_from=start, port_to=end, rate_limit=per_second, rate_unit=unit,
                        revision=row.revision,
                        created_at=clock.now(), updated_at=clock.now())
    _check_duplicate(session, row, rule)
    repository.add(session, rule)
    return _rule_read(rule, row)


def _own_rule(session: Session, actor: Actor, allocation_id: int,
              rule_id: int) -> tuple[Allocation, InstanceRead, FirewallRule]:
    allocation, instance = ip_record(session, actor, allocation_id)
    row = repository.firewall(session, allocation_id)
    rule = repository.rule(session, row.id, rule_id) if row is not None else None
    if rule is None:
        raise NotFound("rule", rule_id)
    return allocation, instance, rule


def update_rule(session: Session, actor: Actor, allocation_id: int, rule_id: int, data: RuleUpdate) -> RuleRead:
    """Change a rule: the fields given replace the rule's."""
    allocation, instance, rule = _own_rule(session, actor, allocation_id, rule_id)
    given = data.model_fields_set
    protocol = data.protocol if data.protocol is not None else rule.protocol
    keeps_ports = "dst_port" not in given and "dst_port_end" not in given
    start, end = (rule.port_from, rule.port_to) if keeps_ports and (protocol in _PORTED or rule.port_from is None) \
        else _ports(protocol, data.dst_port if "dst_port" in given else rule.port_from,
                    data.dst_port_end if "dst_port_end" in given else None)
    source = _source(data.src_cidr, ipaddress.ip_address(allocation.address).version) if "src_cidr" in given \
        else rule.src_cidr
    action = data.action if data.action is not None else rule.action
    per_second = data.rate_limit if "rate_limit" in given else rule.rate_limit
    per_second, unit = _rate(action, per_second, data.rate_unit if "rate_unit" in given
                             else rule.rate_unit if per_second is not None else None)
    row = _changing(session, allocation, instance)
    rule.action, rule.rate_limit, rule.rate_unit = action, per_second, unit
    rule.protocol, rule.src_cidr, rule.port_from, rule.port_to = protocol, source, start, end
    rule.priority = data.priority if data.priority is not None else rule.priority
    rule.revision, rule.updated_at = row.revision, clock.now()
    _check_duplicate(session, row, rule)
    session.flush()
    return _rule_read(rule, row)


def delete_rule(session: Session, actor: Actor, allocation_id: int, rule_id: int) -> None:
    """Remove a rule; its node stops enforcing it shortly."""
    allocation, instance, rule = _own_rule(session, actor, allocation_id, rule_id)
    _changing(session, allocation, instance)
    repository.remove(session, rule)


def set_policy(session: Session, actor: Actor, allocation_id: int, data: PolicyUpdate) -> IpProfileRead:
    """Set the default policies (replies to allowed traffic always pass)."""
    allocation, instance = ip_record(session, actor, allocation_id)
    row = _changing(session, allocation, instance)
    row.default_in = data.default_in or row.default_in or FirewallAction.ALLOW
    row.default_out = data.default_out or row.default_out or FirewallAction.ALLOW
    session.flush()
    return _profile(allocation, instance, row, repository.rules(session, [row.id])[row.id])


# --- what a node enforces ----------------------------------------------------------------------------------


def _spec(rule: FirewallRule) -> FirewallRuleSpec:
    ports = (rule.port_from, rule.port_to or rule.port_from) if rule.port_from is not None else None
    source = None if rule.src_cidr.endswith("/0") else rule.src_cidr
    limit = RateLimit(rule.rate_limit, rule.rate_unit or RateUnit.CONNECTIONS) if rule.rate_limit else None
    return FirewallRuleSpec(rule.action, rule.protocol, source, ports, limit)


def node_firewalls(session: Session, settings: Settings, node_id: int) -> tuple[list[AddressFirewall], dict[int, int]]:
    """What a node must enforce: a firewall for every address of its guests (one its owner never changed allows
    everything, and is there to be counted), with its server's NIC cap, and the revision of each changed firewall
    that makes it up."""
    servers = instances.placed_on(session, node_id)
    allocations = networking.allocations_of(session, servers)
    caps = instances.network_caps(session, settings, servers)
    rows = repository.firewalls(session, [a.id for a in allocations])
    rules = repository.rules(session, [row.id for row in rows.values()])
    found, revisions = [], {}
    for allocation in allocations:
        row = rows.get(allocation.id)
        cap = caps.get(allocation.owner or "")
        if row is None:
            found.append(AddressFirewall(allocation.address, out_mbit=cap))
            continue
        found.append(AddressFirewall(allocation.address, row.default_in, row.default_out,
                                     tuple(_spec(rule) for rule in rules[row.id]), cap))
        revisions[row.id] = row.revision
    return found, revisions


def node_addresses(session: Session, node_id: int) -> dict[str, int]:
    """The addresses of a node's guests (each has its firewall there), with their IP record (allocation) ids."""
    allocations = networking.allocations_of(session, instances.placed_on(session, node_id))
    return {allocation.address: allocation.id for allocation in allocations}


def record_push(session: Session, revisions: dict[int, int], error: str | None) -> None:
    """Note what a push gave the node (each firewall at its revision then), or why the node refused it."""
    for row in repository.firewalls_by_id(session, list(revisions)):
        if error is None:
            row.applied_revision = max(row.applied_revision, revisions[row.id])
            row.pushed_at = clock.now()
            if row.applied_revision >= row.revision:
                row.push_error = ""
        elif row.revision == revisions[row.id]:
            row.push_error = error[:2000]
    session.flush()

