"""A node's own inbound firewall: the operator's rules for what may reach the hypervisor itself (not its guests,
whose addresses Shield filters), kept in node_firewall_rules and enforced by the node's kernel in a table of its
own (drivers' apply_node_firewall; on a libvirt node, `inet cloudlet_node`).

A change opens a `node_firewall_push` action on its node in its own transaction (once per node and transaction);
once the request commits, that action gives the node its whole table (nodes/firewall_push.py), and a scheduled
round writes it again wherever it drifted (nodes/workflows.py).

The control plane must keep reaching the node, so the node's table accepts the control plane's addresses on the
node's management ports before any rule, and a block rule that would cut them off is refused (409) with the
address and port it would cut:

- a remote node (qemu+ssh://, qemu+tls://) is reached on SSH (the URI's port, 22 by default) and, over TLS, on
  libvirt's port (16514; 16509 for plain TCP) from the control plane's address: the addresses in
  CLOUDLET_NODE_FIREWALL_CONTROL_SOURCES or, without them, the source address of this machine's route to the
  node (`ip route get`, within a deadline);
- the local node (qemu:///system) is this machine: the control plane talks to libvirt over its unix socket and
  to its database, Redis and the API over loopback. Loopback is accepted before any rule (`iif lo accept`), so
  no rule can cut it, and a block rule aimed at loopback addresses is refused rather than kept as a rule that
  reads as if it did something. CLOUDLET_NODE_FIREWALL_CONTROL_SOURCES, when set, are kept open on SSH too.

Remote nodes' kernels are written by their node agent, which does not exist yet (issue 15): a rule for one is
refused with 409 rather than stored and never enforced.
"""

from __future__ import annotations

import ipaddress
import re
import subprocess
from typing import NamedTuple
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from cloudlet.actions import service as engine
from cloudlet.config import Settings
from cloudlet.drivers.base import FirewallAction, FirewallProtocol, NodeFirewall, NodeRuleSpec
from cloudlet.kit import clock
from cloudlet.kit.errors import Conflict, Invalid, NotFound
from cloudlet.kit.port_ranges import checked_range
from cloudlet.nodes import inventory, repository
from cloudlet.nodes.models import Node, NodeFirewallRule
from cloudlet.nodes.schemas import NodeFirewallRuleCreate, NodeFirewallRuleRead

CHANGED_NODES = "cloudlet_node_firewall_nodes"  # session.info key: node id -> the push action this transaction opened
PUSH_COMMAND = "node_firewall_push"
PUSH_TASKS = ("node_firewall_apply", "node_firewall_record")  # the last is recorded by the push's conclusion
RULES_PER_NODE = 500
ROUTE_SECONDS = 2.0  # each of a name lookup and a route lookup: both are answered by this machine
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
SSH_PORT, LIBVIRT_TLS_PORT, LIBVIRT_TCP_PORT = 22, 16514, 16509
_PORTED = (FirewallProtocol.TCP, FirewallProtocol.UDP)
_SOURCE = re.compile(r"\bsrc (\S+)")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class CutsControlPlane(Conflict):
    """The rule would block the control plane's way to the node."""

    code = "CUTS_CONTROL_PLANE"


class NodeAgentMissing(Conflict):
    """The node is remote, and only its own agent (issue 15) could write its kernel's firewall."""

    code = "NODE_AGENT_MISSING"


class ControlPlane(NamedTuple):
    """How the control plane reaches a node: from these addresses on these TCP ports (port -> what listens),
    and over loopback when the node is this machine."""

    sources: tuple[Network, ...]
    ports: dict[int, str]
    loopback: bool


# --- the control plane's way to a node ---------------------------------------------------------------------


def _run(command: list[str]) -> str | None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=ROUTE_SECONDS,  # noqa: S603
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def route_source(host: str) -> str | None:
    """The address this machine sends from to reach host (a name or an address): the control plane's address as
    the node sees it, unless NAT hides it. None when the host does not resolve or has no route, in time."""
    try:
        address = str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        resolved = _run(["getent", "ahosts", host])
        if not resolved:
            return None
        address = resolved.split()[0]
    found = _SOURCE.search(_run(["ip", "route", "get", address]) or "")
    return found.group(1) if found else None


def management_ports(uri: str) -> dict[int, str]:
    """The TCP ports the control plane reaches a node's management on, by what listens there."""
    parts = urlsplit(uri)
    if inventory.is_local(uri):
        return {SSH_PORT: "SSH"}
    if parts.scheme == "qemu+ssh":
        return {parts.port or SSH_PORT: "SSH, which carries libvirt"}
    if parts.scheme == "qemu+tls":
        return {SSH_PORT: "SSH", parts.port or LIBVIRT_TLS_PORT: "libvirt over TLS"}
    return {SSH_PORT: "SSH", parts.port or LIBVIRT_TCP_PORT: "libvirt"}


def control_plane(settings: Settings, uri: str) -> ControlPlane:
    """How the control plane reaches the node at uri (see the module's docstring)."""
    local = inventory.is_local(uri)
    sources: tuple[Network, ...] = tuple(settings.node_firewall_control_sources)
    if not sources and not local:
        found = route_source(urlsplit(uri).hostname or "")
        sources = (ipaddress.ip_network(found),) if found else ()
    return ControlPlane(sources, management_ports(uri), local)


def _named(network: Network) -> str:
    return str(network.network_address) if network.num_addresses == 1 else str(network)


def cut(rule: NodeRuleSpec, plane: ControlPlane) -> str | None:
    """Why this rule would cut the control plane off from the node, or None when it would not."""
    if rule.action is not FirewallAction.BLOCK:
        return None
    source = ipaddress.ip_network(rule.source) if rule.source is not None else None
    if plane.loopback and source is not None:
        for loopback in LOOPBACK:
            if source.version == loopback.version and source.overlaps(loopback):
                return (f"This rule would cut the control plane off from the node: it blocks "
                        f"{loopback.network_address + 1 if loopback.version == 4 else loopback.network_address} "
                        "(loopback) on any port, where Cloudlet on this node reaches libvirt, its database, Redis "
                        "and the API. Loopback is always accepted before the node's rules; aim the rule at other "
                        "sources.")
    if rule.protocol not in (FirewallProtocol.TCP, FirewallProtocol.ANY):
        return None
    for network in plane.sources:
        if source is not None and (source.version != network.version
                                   or not source.overlaps(network)):
            continue
        for port, what in sorted(plane.ports.items()):
            if rule.ports is None or rule.ports[0] <= port <= rule.ports[1]:
                return (f"This rule would cut the control plane off from the node: it blocks {_named(network)} "
                        f"on tcp port {port} ({what}), where Cloudlet reaches the node. Narrow its source or its "
                        "ports.")
    return None


# --- reading and changing ----------------------------------------------------------------------------------


def _node(session: Session, node_id: int) -> Node:
    node = repository.node(session, node_id)
    if node is None:
        raise NotFound("node", node_id)
    return node


def _read(rule: NodeFirewallRule) -> NodeFirewallRuleRead:
    return NodeFirewallRuleRead(id=rule.id, action=rule.action, protocol=rule.protocol, source=rule.source,
                                port=rule.port_from,
                                port_end=rule.port_to if rule.port_to != rule.port_from else None,
                                comment=rule.comment, created_at=rule.created_at)


def _spec(rule: NodeFirewallRule) -> NodeRuleSpec:
    ports = (rule.port_from, rule.port_to or rule.port_from) if rule.port_from is not None else None
    return NodeRuleSpec(rule.action, rule.protocol, rule.source, ports)


def list_rules(session: Session, node_id: int) -> list[NodeFirewallRuleRead]:
    """A node's own firewall rules, in the order they decide."""
    _node(session, node_id)
    return [_read(rule) for rule in repository.firewall_rules(session, node_id)]


def _source(text: str | None) -> str | None:
    if text is None or not text.strip():
        return None
    try:
        return str(ipaddress.ip_network(text.strip()))
    except ValueError:
        raise Invalid("source", f"{text!r} is not a network in CIDR form (for example 203.0.113.0/24 or "
                                "2001:db8::/32, with no bits set past the prefix).", code="INVALID_CIDR") from None


def _ports(protocol: FirewallProtocol, start: int | None, end: int | None) -> tuple[int | None, int | None]:
    return checked_range(start, end, ported=protocol in _PORTED, field="port", end_field="port_end")


def add_rule(session: Session, settings: Settings, node_id: int, data: NodeFirewallRuleCreate) -> NodeFirewallRuleRead:
    """Add a rule after the node's others; the node enforces it shortly. Refused (409) when it would cut the
    control plane off from the node, or when the node is remote (no agent to write its kernel yet)."""
    node = _node(session, node_id)
    source = _source(data.source)
    start, end = _ports(data.protocol, data.port, data.port_end)
    rule = NodeFirewallRule(node_id=node.id, action=data.action, protocol=data.protocol, source=source,
                            port_from=start, port_to=end, comment=data.comment.strip(), created_at=clock.now())
    reason = cut(_spec(rule), control_plane(settings, node.uri))
    if reason is not None:
        raise CutsControlPlane(reason)
    if not inventory.is_local(node.uri):
        raise NodeAgentMissing(f"The firewall of the remote node {node.name} ({node.uri}) would be written by its "
                               "node agent, which Cloudlet does not have yet; only the local node's can be written.")
    existing = repository.firewall_rules(session, node.id)
    if len(existing) >= RULES_PER_NODE:
        raise Conflict(f"A node has at most {RULES_PER_NODE} firewall rules.", code="RULE_LIMIT")
    for other in existing:
        if (other.action, other.protocol, other.source, other.port_from, other.port_to) == (
                rule.action, rule.protocol, rule.source, rule.port_from, rule.port_to):
            raise Conflict(f"The node has this rule already (rule {other.id}).", code="RULE_EXISTS")
    repository.insert(session, rule)
    _push(session, node.id)
    return _read(rule)


def remove_rule(session: Session, node_id: int, rule_id: int) -> None:
    """Remove a rule; the node stops enforcing it shortly."""
    _node(session, node_id)
    rule = repository.firewall_rule(session, node_id, rule_id)
    if rule is None:
        raise NotFound("rule", rule_id)
    repository.delete(session, rule)
    _push(session, node_id)


def _push(session: Session, node_id: int) -> None:
    pushes: dict[int, int] = session.info.setdefault(CHANGED_NODES, {})
    if node_id not in pushes:
        pushes[node_id] = engine.begin_on_node(session, node_id, PUSH_COMMAND, PUSH_TASKS).id


# --- what a node enforces ----------------------------------------------------------------------------------


def node_firewall(session: Session, settings: Settings, node_id: int) -> tuple[str, NodeFirewall]:
    """A node's URI and the firewall it must enforce: its rules behind the control plane's way in."""
    node = _node(session, node_id)
    rules = tuple(_spec(rule) for rule in repository.firewall_rules(session, node_id))
    if not rules:
        return node.uri, NodeFirewall()
    plane = control_plane(settings, node.uri)
    return node.uri, NodeFirewall(rules, tuple(str(source) for source in plane.sources), tuple(sorted(plane.ports)))
