"""Guests' address firewalls in the node's kernel: one nftables table, `inet cloudlet`, replaced whole and at once.

Guests are bridged, so the node asks the bridge to hand its IPv4 and IPv6 frames to the IP hooks
(`net.bridge.bridge-nf-call-iptables` and `-ip6tables`, br_netfilter): the forward hook then sees every packet
to and from a guest with connection tracking, whatever the guest does. Verdict maps send a packet to the chain
of its source address (the outbound policy: blocked, or on to the next step) and then of its destination
address (inbound rules, then the inbound policy), one lookup each however many addresses the node holds.
Replies to allowed traffic pass (conntrack), and so does IPv6 neighbour discovery; ARP is not IP and is never
filtered.

An address's rules are cut into runs of rules that no packet meets two of (drivers' order kept): each run is
one verdict map keyed by source, protocol and destination port (interval elements), jumping to the rule's own
chain, which counts its hits. A packet costs a lookup per run, not a comparison per rule: 500 rules that do not
overlap are one lookup, and the first rule that matches still decides. A rule's per-source rate limit is a
meter ahead of the rules (what exceeds it is dropped). Every inbound packet is counted, and dynamic sets with a
counter per element keep what each source and each TCP/UDP port received and what the firewall dropped, by
source and port (visibility: `traffic`); an element unseen for SEEN_FOR is forgotten.

The table's comment carries the digest of its script, and a node's table is "in force" when that digest and its
number of rules are what Cloudlet wrote: a table deleted, flushed or edited behind Cloudlet's back is not, and
the reconciler writes it again. It is written whole in one transaction (drivers/libvirt/nft.py): a packet meets
either the old rules or the new, never a half-written table.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from cloudlet.drivers.base import (
    AddressFirewall,
    AddressTraffic,
    Counted,
    FirewallAction,
    FirewallHits,
    FirewallProtocol,
    FirewallRuleSpec,
    GuestFailed,
    RateUnit,
)
from cloudlet.drivers.libvirt import nft

TABLE = "cloudlet"
BRIDGE_SYSCTLS = ("bridge-nf-call-iptables", "bridge-nf-call-ip6tables")
_VERDICT = {FirewallAction.ALLOW: "accept", FirewallAction.BLOCK: "drop"}
_NEIGHBOUR_DISCOVERY = "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert } accept"


def chain_key(address: str) -> str:
    """What names an address's chains: "4_203_0_113_5" for 203.0.113.5, "6_2001_db8__5" for 2001:db8::5."""
    found = ipaddress.ip_address(address)
    return f"{found.version}_" + str(found).replace(".", "_").replace(":", "_")


def address_of(key: str) -> str:
    """The address a chain key names."""
    version, rest = key.split("_", 1)
    return rest.replace("_", "." if version == "4" else ":")


_ANY_SOURCE = {4: "0.0.0.0/0", 6: "::/0"}
_ICMP = {4: 1, 6: 58}
_FAMILY = {4: "ip", 6: "ip6"}
_KEY_TYPE = {4: "ipv4_addr", 6: "ipv6_addr"}
SOURCES_KEPT = 8192  # the sources an address's visibility set holds; one unseen for SEEN_FOR is forgotten
PORTS_KEPT = 1024
DROPS_KEPT = 256
SEEN_FOR = "15m"


class _Box(NamedTuple):
    """What a rule matches, as the ranges of its map element: source, protocol, destination port."""

    source: tuple[int, int]
    protocol: tuple[int, int]
    ports: tuple[int, int]

    def meets(self, other: _Box) -> bool:
        return all(low <= other_high and other_low <= high
                   for (low, high), (other_low, other_high) in zip(self, other, strict=True))


def _protocols(rule: FirewallRuleSpec, version: int) -> tuple[int, int]:
    if rule.protocol is FirewallProtocol.ANY:
        return 0, 255
    number = _ICMP[version] if rule.protocol is FirewallProtocol.ICMP else _PROTOCOL_NUMBERS[rule.protocol]
    return number, number


_PROTOCOL_NUMBERS = {FirewallProtocol.TCP: 6, FirewallProtocol.UDP: 17}


def _box(rule: FirewallRuleSpec, version: int) -> tuple[_Box, str]:
    """The rule's ranges, and its map element's key."""
    network = ipaddress.ip_network(rule.source or _ANY_SOURCE[version], strict=False)
    protocols = _protocols(rule, version)
    ports = rule.ports or (0, 65535)
    box = _Box((int(network.network_address), int(network.broadcast_address)), protocols, ports)
    key = " . ".join(f"{low}" if low == high else f"{low}-{high}" for low, high in (protocols, ports))
    return box, f"{network} . {key}"


def _chunks(rules: Sequence[FirewallRuleSpec], version: int) -> list[list[tuple[int, str]]]:
    """The rules cut into runs, in order, where no two rules of a run match the same packet: a run is one map
    lookup that finds the one rule a packet meets, so the first rule that matches still decides, and a packet
    costs a lookup per run instead of a comparison per rule."""
    chunks: list[list[tuple[int, str]]] = []
    boxes: list[_Box] = []
    for index, rule in enumerate(rules):
        box, key = _box(rule, version)
        if not chunks or any(box.meets(other) for other in boxes):
            chunks.append([])
            boxes = []
        chunks[-1].append((index, key))
        boxes.append(box)
    return chunks


def _match(rule: FirewallRuleSpec, version: int) -> str:
    parts = []
    if rule.source is not None:
        parts.append(f"{_FAMILY[version]} saddr {ipaddress.ip_network(rule.source, strict=False)}")
    if rule.protocol is not FirewallProtocol.ANY:
        parts.append(f"meta l4proto {_protocols(rule, version)[0]}")
    if rule.ports is not None:
        low, high = rule.ports
        parts.append(f"th dport {low}" if low == high else f"th dport {low}-{high}")
    return " ".join(parts)


class _Script:
    """The table's declarations as they are written, counting the rules of its chains."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.rules = 0

    def chain(self, name: str, lines: list[str]) -> None:
        self.parts.append(nft.chain(name, lines))
        self.rules += sum(not line.startswith("type ") for line in lines)

    def declare(self, kind: str, name: str, *lines: str) -> None:
        self.parts.append(f"  {kind} {name} {{\n" + "".join(f"    {line}\n" for line in lines) + "  }")

    def dynamic_set(self, name: str, key_type: str, size: int) -> None:
        self.declare("set", name, f"type {key_type}; size {size}; flags dynamic,timeout; timeout {SEEN_FOR}; counter;")


def _address(script: _Script, firewall: AddressFirewall) -> None:
    """The chains, maps and sets of one address."""
    version = ipaddress.ip_address(firewall.address).version
    key, family = chain_key(firewall.address), _FAMILY[version]
    drop = f"update @drop{key} {{ {family} saddr . meta l4proto . th dport }} counter drop"
    seen = [f'counter name "all{key}"', f"update @src{key} {{ {family} saddr }}",
            f"meta l4proto {{ tcp, udp }} update @port{key} {{ meta l4proto . th dport }}"]
    script.dynamic_set(f"src{key}", _KEY_TYPE[version], SOURCES_KEPT)
    script.dynamic_set(f"port{key}", "inet_proto . inet_service", PORTS_KEPT)
    script.dynamic_set(f"drop{key}", f"{_KEY_TYPE[version]} . inet_proto . inet_service", DROPS_KEPT)
    script.declare("counter", f"all{key}")
    limits = []
    for index, rule in enumerate(firewall.rules):
        verdict = "counter accept" if rule.action is FirewallAction.ALLOW else drop
        script.chain(f"r{key}_{index}", [verdict])
        if rule.rate_limit is not None:
            per_second, new_only = rule.rate_limit.per_second, rule.rate_limit.unit is RateUnit.CONNECTIONS
            limits.append(" ".join(filter(None, (_match(rule, version), "ct state new" if new_only else "",
                                                 f"jump l{key}_{index}"))))
            script.chain(f"l{key}_{index}", [
                f"meter rate{key}_{index} size {SOURCES_KEPT} {{ {family} saddr limit rate over {per_second}/second "
                f"burst {per_second} packets }} {drop}"])
    lookups = []
    for number, chunk in enumerate(_chunks(firewall.rules, version)):
        elements = ", ".join(f"{element} : jump r{key}_{index}" for index, element in chunk)
        script.declare("map", f"m{key}_{number}",
                       f"type {_KEY_TYPE[version]} . inet_proto . inet_service : verdict; flags interval;",
                       f"elements = {{ {elements} }}")
        lookups.append(f"{family} saddr . meta l4proto . th dport vmap @m{key}_{number}")
    first = ["ct state established,related accept", "ct state invalid drop"]
    if version == 6:
        first.append(_NEIGHBOUR_DISCOVERY)
    policy = "counter accept" if firewall.default_in is FirewallAction.ALLOW else drop
    script.chain(f"in{key}", [*seen, *limits, *first, *lookups, policy])
    # allowed out goes on to the destination's own chain (another guest of this node may have one)
    out = "counter return" if firewall.default_out is FirewallAction.ALLOW else "counter drop"
    script.chain(f"out{key}", [*first, out])


def _body(firewalls: Sequence[AddressFirewall]) -> tuple[str, int]:
    inbound: dict[int, list[str]] = {4: [], 6: []}
    outbound: dict[int, list[str]] = {4: [], 6: []}
    addresses = _Script()
    for firewall in firewalls:
        version = ipaddress.ip_address(firewall.address).version
        key = chain_key(firewall.address)
        inbound[version].append(f"{firewall.address} : jump in{key}")
        outbound[version].append(f"{firewall.address} : jump out{key}")
        _address(addresses, firewall)
    dispatch = ["type filter hook forward priority filter; policy accept;"]
    for family_version, family in _FAMILY.items():
        if inbound[family_version]:
            dispatch.append(f"{family} saddr vmap {{ {', '.join(outbound[family_version])} }}")
            dispatch.append(f"{family} daddr vmap {{ {', '.join(inbound[family_version])} }}")
    script = _Script()
    script.chain("forward", dispatch)
    return "\n".join([*script.parts, *addresses.parts]), script.rules + addresses.rules


def mark(firewalls: Sequence[AddressFirewall]) -> nft.TableMark:
    """How the table holding exactly these firewalls is recognised."""
    return nft.mark_of(*_body(firewalls))


def ruleset(firewalls: Sequence[AddressFirewall]) -> str:
    """The nft script that makes the table hold exactly these firewalls (its mark in the table's comment)."""
    return nft.script(TABLE, _body(firewalls)[0])


def live_mark(*, namespace: str | None = None) -> nft.TableMark | None:
    """The mark of the table the kernel holds now (rules flushed, added or removed behind Cloudlet's back change
    it); None when there is no table."""
    return nft.live_mark(TABLE, namespace=namespace)


def bridge_to_ip_hooks(proc_sys: Path = Path("/proc/sys/net/bridge")) -> None:
    """Have bridges hand IPv4 and IPv6 frames to the IP hooks (br_netfilter), where the table filters them."""
    for name in BRIDGE_SYSCTLS:
        setting = proc_sys / name
        if not setting.exists():
            raise GuestFailed(f"{setting} does not exist: this kernel has no br_netfilter, so bridged guests "
                              "cannot be filtered")
        if setting.read_text().strip() != "1":
            setting.write_text("1\n")


def apply(firewalls: Sequence[AddressFirewall], *, namespace: str | None = None) -> None:
    """Replace the table with these firewalls in one transaction (in a network namespace, for tests)."""
    nft.write(ruleset(firewalls), namespace=namespace)


def _objects(namespace: str | None) -> list[dict[str, Any]]:
    """The table's objects as nft lists them (JSON); none when there is no table."""
    return nft.listed(TABLE, namespace=namespace) or []


def _counted(counter: dict[str, Any]) -> Counted:
    return Counted(int(counter["packets"]), int(counter["bytes"]))


def _rule_counter(rule: dict[str, Any]) -> Counted:
    """The rule's own counter (a reference to a named counter is not one)."""
    return next((_counted(expression["counter"]) for expression in rule.get("expr", [])
                 if isinstance(expression.get("counter"), dict)), Counted(0, 0))


_RULE_CHAIN = re.compile(r"^([rl])(\d_\w+)_(\d+)$")


def hits(*, namespace: str | None = None) -> dict[str, FirewallHits]:
    """What each address's inbound rules (in order) and inbound policy have matched since the table was written,
    read from the rules' counters (a rate-limited rule's drops included); nothing when there is no table."""
    rules: dict[str, dict[int, tuple[int, int]]] = {}
    policies: dict[str, Counted] = {}
    for item in _objects(namespace):
        rule = item.get("rule")
        if rule is None:
            continue
        chain, counted = rule["chain"], _rule_counter(rule)
        if chain.startswith("in"):
            policies[chain.removeprefix("in")] = counted  # the chain's last rule is its policy
        elif (found := _RULE_CHAIN.match(chain)) is not None:
            index = int(found.group(3))
            packets, size = rules.setdefault(found.group(2), {}).get(index, (0, 0))
            rules[found.group(2)][index] = (packets + counted.packets, size + counted.bytes)
    # every rule has its chain, so the indexes counted are 0 to n - 1
    return {address_of(key): FirewallHits(tuple(rules.get(key, {})[index] for index in sorted(rules.get(key, {}))),
                                          (policy.packets, policy.bytes))
            for key, policy in policies.items()}


def _value(value: Any) -> Any:
    return value["concat"] if isinstance(value, dict) and "concat" in value else value


def traffic(*, namespace: str | None = None) -> dict[str, AddressTraffic]:
    """What reached each address since the table was written: its counter and its visibility sets."""
    totals: dict[str, Counted] = {}
    sets: dict[str, dict[Any, Counted]] = {}
    table = 0
    for item in _objects(namespace):
        if "table" in item:
            table = int(item["table"]["handle"])  # a new handle each time the table is written
        elif (counter := item.get("counter")) is not None and counter["name"].startswith("all"):
            totals[counter["name"].removeprefix("all")] = _counted(counter)
        elif (found := item.get("set")) is not None:
            elements = sets.setdefault(found["name"], {})
            for element in found.get("elem", []):
                inner = element.get("elem", {})
                if "counter" in inner:
                    value = _value(inner["val"])
                    elements[tuple(value) if isinstance(value, list) else value] = _counted(inner["counter"])
    return {address_of(key): AddressTraffic(
        table, total,
        {str(source): counted for source, counted in sets.get(f"src{key}", {}).items()},
        {(str(protocol), int(port)): counted for (protocol, port), counted in sets.get(f"port{key}", {}).items()},
        {(str(source), str(protocol), int(port)): counted
         for (source, protocol, port), counted in sets.get(f"drop{key}", {}).items()})
        for key, total in totals.items()}
