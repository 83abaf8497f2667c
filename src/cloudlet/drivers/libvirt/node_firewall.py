"""The node's own inbound firewall in its kernel: one nftables table, `inet cloudlet_node`, replaced whole and
at once (drivers/libvirt/nft.py), beside the guests' `inet cloudlet` table and independent of it.

Its one chain hooks input, so it sees what is addressed to the node itself, not the guests' bridged traffic:

    iif lo accept                                   the control plane of a local node, its database, Redis
    ct state established,related accept             replies to what the node itself opened
    ct state invalid drop
    icmpv6 type { nd-... } accept                   IPv6 neighbour discovery, or the node loses its neighbours
    ip saddr { CONTROL } tcp dport { PORTS } accept the control plane's addresses on SSH and libvirt's port
    <the operator's rules, in order, each counted>
    policy accept

The policy is accept on purpose: an input chain that drops what no rule allowed would cut the operator off
the node (their own SSH, DHCP renewals, monitoring) at the first rule they write. An operator who wants
"deny by default" writes their allow rules and then a final block rule, and sees what they did.

The table's comment carries the digest of its script, and the node's table is "in force" when that digest and
its rule count are what Cloudlet wrote: a table flushed, deleted or edited behind Cloudlet's back is not, and
the reconciler writes it again.
"""

from __future__ import annotations

import ipaddress

from cloudlet.drivers.base import FirewallAction, FirewallProtocol, NodeFirewall, NodeRuleSpec
from cloudlet.drivers.libvirt import nft

TABLE = "cloudlet_node"
_VERDICT = {FirewallAction.ALLOW: "accept", FirewallAction.BLOCK: "drop"}
_NEIGHBOUR_DISCOVERY = ("icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, "
                        "nd-router-advert } accept")


def _rule(rule: NodeRuleSpec) -> str:
    parts = []
    version = None
    if rule.source is not None:
        network = ipaddress.ip_network(rule.source, strict=False)
        version = network.version
        parts.append(f"{'ip' if version == 4 else 'ip6'} saddr {network}")
    if rule.protocol is FirewallProtocol.ICMP:
        parts.append({4: "meta l4proto icmp", 6: "meta l4proto ipv6-icmp", None: "meta l4proto { icmp, ipv6-icmp }"}
                     [version])
    elif rule.protocol is not FirewallProtocol.ANY:
        parts.append(f"meta l4proto {rule.protocol.value}")
    if rule.ports is not None:
        low, high = rule.ports
        parts.append(f"th dport {low}" if low == high else f"th dport {low}-{high}")
    return " ".join([*parts, "counter", _VERDICT[rule.action]])


def _control(firewall: NodeFirewall) -> list[str]:
    if not firewall.control_sources or not firewall.control_ports:
        return []
    ports = ", ".join(str(port) for port in sorted(set(firewall.control_ports)))
    lines = []
    for version, family in ((4, "ip"), (6, "ip6")):
        sources = sorted({str(ipaddress.ip_network(source, strict=False)) for source in firewall.control_sources
                          if ipaddress.ip_network(source, strict=False).version == version})
        if sources:
            lines.append(f"{family} saddr {{ {', '.join(sources)} }} tcp dport {{ {ports} }} accept")
    return lines


def body(firewall: NodeFirewall) -> str | None:
    """The table's chains for this firewall; None when it has no rule (then there is no table)."""
    if not firewall.rules:
        return None
    lines = ["type filter hook input priority filter; policy accept;", "iif lo accept",
             "ct state established,related accept", "ct state invalid drop", _NEIGHBOUR_DISCOVERY,
             *_control(firewall), *(_rule(rule) for rule in firewall.rules)]
    return nft.chain("input", lines)


def mark(firewall: NodeFirewall) -> nft.TableMark | None:
    """How the table holding exactly this firewall is recognised; None: no table at all."""
    chains = body(firewall)
    return None if chains is None else nft.mark_of(chains)


def ruleset(firewall: NodeFirewall) -> str:
    """The nft script that makes the node's table hold exactly this firewall (or removes it)."""
    return nft.script(TABLE, body(firewall))


def apply(firewall: NodeFirewall, *, namespace: str | None = None) -> None:
    """Replace the node's table with this firewall in one transaction (in a network namespace, for tests)."""
    nft.write(ruleset(firewall), namespace=namespace)


def in_force(firewall: NodeFirewall, *, namespace: str | None = None) -> bool:
    """Whether the kernel holds the table this firewall makes (no table, for a firewall without rules)."""
    expected = mark(firewall)
    if expected is None:
        return nft.listed(TABLE, namespace=namespace) is None
    return nft.live_mark(TABLE, namespace=namespace) == expected
