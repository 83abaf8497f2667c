"""Guests' address firewalls in the node's kernel: one nftables table, `inet cloudlet`, replaced whole and at once.

Guests are bridged, so the node asks the bridge to hand its IPv4 and IPv6 frames to the IP hooks
(`net.bridge.bridge-nf-call-iptables` and `-ip6tables`, br_netfilter): the forward hook then sees every packet
to and from a guest with connection tracking, whatever the guest does. Verdict maps send a packet to the chain
of its source address (the outbound policy: blocked, or on to the next step) and then of its destination
address (inbound rules, then the inbound policy), one lookup each however many addresses the node holds.
Replies to allowed traffic pass (conntrack), and so does IPv6 neighbour discovery; ARP is not IP and is never
filtered.

An address's rules are cut into runs of rules that no packet meets two of (drivers' order kept): the k-th runs
of all the node's addresses make one interval verdict map of the family, keyed by destination, source, protocol
and destination port, whose elements jump to each rule's own counting chain. A packet costs a lookup per run of
its address, not a comparison per rule: 500 rules that do not overlap are one lookup, and the first rule that
matches still decides. A rule's per-source rate limit is a meter ahead of the rules (what exceeds it is
dropped). Dynamic sets with a counter per element, one of each kind per family for the whole node, keep what
each address received in all, from each source and on each TCP/UDP port, and what its firewall dropped by
source and port (visibility: `traffic`); an element unseen for SEEN_FOR is forgotten, and a set holds at most
its size (SOURCES_KEPT and so on) for all the node's addresses together.

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
from typing import Any

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
_PROTOCOL_NUMBERS = {FirewallProtocol.TCP: 6, FirewallProtocol.UDP: 17}
_FAMILY = {4: "ip", 6: "ip6"}
_KEY_TYPE = {4: "ipv4_addr", 6: "ipv6_addr"}
# what the visibility sets of all a node's addresses hold at most; an element unseen for SEEN_FOR is forgotten
SOURCES_KEPT, PORTS_KEPT, DROPS_KEPT, ADDRESSES_KEPT = 65536, 16384, 4096, 65536
SEEN_FOR = "15m"
_ALL_PORTS = (1 << 65536) - 1


def _protocols(rule: FirewallRuleSpec, version: int) -> tuple[int, int]:
    if rule.protocol is FirewallProtocol.ANY:
        return 0, 255
    number = _ICMP[version] if rule.protocol is FirewallProtocol.ICMP else _PROTOCOL_NUMBERS[rule.protocol]
    return number, number


class _Run:
    """Rules that no packet meets two of, each with its map element's key. Two rules meet when their sources
    overlap (CIDRs: one holds the other), their protocols do, and their ports do; the ports of the rules of one
    source and protocol range are kept as a bit mask, so a run of hundreds of rules is checked quickly."""

    def __init__(self) -> None:
        self.rules: list[tuple[int, str]] = []
        self._ports: dict[tuple[int, int], dict[tuple[int, int], int]] = {}  # protocols -> source -> ports

    def takes(self, index: int, rule: FirewallRuleSpec, version: int) -> bool:
        """Add the rule unless it meets one of the run's; whether it was added."""
        network = ipaddress.ip_network(rule.source or _ANY_SOURCE[version], strict=False)
        source = (int(network.network_address), int(network.broadcast_address))
        protocols = _protocols(rule, version)
        low, high = rule.ports or (0, 65535)
        ports = _ALL_PORTS if (low, high) == (0, 65535) else ((1 << (high - low + 1)) - 1) << low
        for (first, last), sources in self._ports.items():
            if first <= protocols[1] and protocols[0] <= last:
                for (start, end), taken in sources.items():
                    if start <= source[1] and source[0] <= end and taken & ports:
                        return False
        by_source = self._ports.setdefault(protocols, {})
        by_source[source] = by_source.get(source, 0) | ports
        key = " . ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in (protocols, (low, high)))
        self.rules.append((index, f"{network} . {key}"))
        return True


def _runs(rules: Sequence[FirewallRuleSpec], version: int) -> list[_Run]:
    """The rules cut into runs, in order, where no two rules of a run match the same packet: a run is one map
    lookup that finds the one rule a packet meets, so the first rule that matches still decides, and a packet
    costs a lookup per run instead of a comparison per rule."""
    runs: list[_Run] = []
    for index, rule in enumerate(rules):
        if not runs or not runs[-1].takes(index, rule, version):
            runs.append(_Run())
            runs[-1].takes(index, rule, version)
    return runs


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


def _address(script: _Script, firewall: AddressFirewall, maps: list[list[str]]) -> None:
    """The chains of one address; the elements of its runs join the family's maps (one a run)."""
    version = ipaddress.ip_address(firewall.address).version
    key, family, v = chain_key(firewall.address), _FAMILY[version], version
    drop = f"update @drop{v} {{ {family} daddr . {family} saddr . meta l4proto . th dport }} counter drop"
    seen = [f"update @all{v} {{ {family} daddr }}", f"update @src{v} {{ {family} daddr . {family} saddr }}",
            f"meta l4proto {{ tcp, udp }} update @port{v} {{ {family} daddr . meta l4proto . th dport }}"]
    limits = []
    for index, rule in enumerate(firewall.rules):
        script.chain(f"r{key}_{index}", ["counter accept" if rule.action is FirewallAction.ALLOW else drop])
        if rule.rate_limit is not None:
            per_second, new_only = rule.rate_limit.per_second, rule.rate_limit.unit is RateUnit.CONNECTIONS
            limits.append(" ".join(filter(None, (_match(rule, version), "ct state new" if new_only else "",
                                                 f"jump l{key}_{index}"))))
            script.chain(f"l{key}_{index}", [
                f"meter rate{key}_{index} size {SOURCES_KEPT} {{ {family} saddr limit rate over {per_second}/second "
                f"burst {per_second} packets }} {drop}"])
    lookups = []
    for number, run in enumerate(_runs(firewall.rules, version)):
        if number == len(maps):
            maps.append([])
        maps[number].extend(f"{firewall.address} . {element} : jump r{key}_{index}" for index, element in run.rules)
        lookups.append(f"{family} daddr . {family} saddr . meta l4proto . th dport vmap @m{v}_{number}")
    first = ["ct state established,related accept", "ct state invalid drop"]
    if version == 6:
        first.append(_NEIGHBOUR_DISCOVERY)
    policy = "counter accept" if firewall.default_in is FirewallAction.ALLOW else drop
    script.chain(f"in{key}", [*seen, *limits, *first, *lookups, policy])
    # what the guest sends past its cap is dropped first, replies included (they are what it sends)
    police = [] if firewall.out_mbit is None else [
        "limit rate over {} bytes/second burst {} bytes counter drop".format(*police_rates(firewall.out_mbit))]
    # allowed out goes on to the destination's own chain (another guest of this node may have one)
    out = "counter return" if firewall.default_out is FirewallAction.ALLOW else "counter drop"
    script.chain(f"out{key}", [*police, *first, out])


def police_rates(mbit: int) -> tuple[int, int]:
    """(bytes per second, burst bytes) of the policer that holds what a guest sends to mbit Mbit/s. nft's limit
    keeps a bucket of a second's worth plus the burst: over any span of t seconds at most rate * (t + 1) + burst
    bytes pass, so a transfer's first second may go at line rate, then the cap holds."""
    rate = mbit * 125_000
    return rate, max(16_000, rate // 10)


def _body(firewalls: Sequence[AddressFirewall]) -> tuple[str, int]:
    inbound: dict[int, list[str]] = {4: [], 6: []}
    outbound: dict[int, list[str]] = {4: [], 6: []}
    maps: dict[int, list[list[str]]] = {4: [], 6: []}
    addresses = _Script()
    for firewall in firewalls:
        version = ipaddress.ip_address(firewall.address).version
        key = chain_key(firewall.address)
        inbound[version].append(f"{firewall.address} : jump in{key}")
        outbound[version].append(f"{firewall.address} : jump out{key}")
        _address(addresses, firewall, maps[version])
    script = _Script()
    dispatch = ["type filter hook forward priority filter; policy accept;"]
    for v, family in _FAMILY.items():
        if not inbound[v]:
            continue
        dispatch.append(f"{family} saddr vmap {{ {', '.join(outbound[v])} }}")
        dispatch.append(f"{family} daddr vmap {{ {', '.join(inbound[v])} }}")
        address, source = _KEY_TYPE[v], _KEY_TYPE[v]
        for name, key_type, size in ((f"all{v}", address, ADDRESSES_KEPT),
                                     (f"src{v}", f"{address} . {source}", SOURCES_KEPT),
                                     (f"port{v}", f"{address} . inet_proto . inet_service", PORTS_KEPT),
                                     (f"drop{v}", f"{address} . {source} . inet_proto . inet_service", DROPS_KEPT)):
            script.declare("set", name, f"type {key_type}; size {size}; flags dynamic,timeout; timeout {SEEN_FOR}; "
                                        "counter;")
        for number, elements in enumerate(maps[v]):
            script.declare("map", f"m{v}_{number}",
                           f"type {address} . {source} . inet_proto . inet_service : verdict; flags interval;",
                           f"elements = {{ {', '.join(elements)} }}")
    script.chain("forward", dispatch)
    return "\n".join([*script.parts, *addresses.parts]), script.rules + addresses.rules


def mark(firewalls: Sequence[AddressFirewall]) -> nft.TableMark:
    """How the table holding exactly these firewalls is recognised."""
    return nft.mark_of(*_body(firewalls))


def ruleset(firewalls: Sequence[AddressFirewall], table: str = TABLE) -> str:
    """The nft script that makes the table hold exactly these firewalls (its mark in the table's comment)."""
    return nft.script(table, _body(firewalls)[0])


def live_mark(*, table: str = TABLE, namespace: str | None = None) -> nft.TableMark | None:
    """The mark of the table the kernel holds now (rules flushed, added or removed behind Cloudlet's back change
    it); None when there is no table."""
    return nft.live_mark(table, namespace=namespace)


def bridge_to_ip_hooks(proc_sys: Path = Path("/proc/sys/net/bridge")) -> None:
    """Have bridges hand IPv4 and IPv6 frames to the IP hooks (br_netfilter), where the table filters them."""
    for name in BRIDGE_SYSCTLS:
        setting = proc_sys / name
        if not setting.exists():
            raise GuestFailed(f"{setting} does not exist: this kernel has no br_netfilter, so bridged guests "
                              "cannot be filtered")
        if setting.read_text().strip() != "1":
            setting.write_text("1\n")


def apply(firewalls: Sequence[AddressFirewall], *, table: str = TABLE, namespace: str | None = None) -> None:
    """Replace the table with these firewalls in one transaction (in a network namespace, for tests)."""
    nft.write(ruleset(firewalls, table), namespace=namespace)


def _objects(table: str, namespace: str | None) -> list[dict[str, Any]]:
    """The table's objects as nft lists them (JSON); none when there is no table."""
    return nft.listed(table, namespace=namespace) or []


def _counted(counter: dict[str, Any]) -> Counted:
    return Counted(int(counter["packets"]), int(counter["bytes"]))


def _rule_counter(rule: dict[str, Any]) -> Counted:
    """The rule's own counter (a reference to a named counter is not one)."""
    return next((_counted(expression["counter"]) for expression in rule.get("expr", [])
                 if isinstance(expression.get("counter"), dict)), Counted(0, 0))


_RULE_CHAIN = re.compile(r"^([rl])(\d_\w+)_(\d+)$")


def hits(*, table: str = TABLE, namespace: str | None = None) -> dict[str, FirewallHits]:
    """What each address's inbound rules (in order) and inbound policy have matched since the table was written,
    read from the rules' counters (a rate-limited rule's drops included); nothing when there is no table."""
    rules: dict[str, dict[int, tuple[int, int]]] = {}
    policies: dict[str, Counted] = {}
    for item in _objects(table, namespace):
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


def traffic(*, table: str = TABLE, namespace: str | None = None) -> dict[str, AddressTraffic]:
    """What reached each address since the table was written: its visibility sets' elements, by address."""
    written = 0
    found: dict[str, AddressTraffic] = {}

    def of(address: str) -> AddressTraffic:
        return found.setdefault(str(address), AddressTraffic(written, Counted(0, 0), {}, {}, {}))

    for item in _objects(table, namespace):
        if "table" in item:
            written = int(item["table"]["handle"])  # a new handle each time the table is written
        if (listed := item.get("set")) is None or listed["name"][:-1] not in ("all", "src", "port", "drop"):
            continue
        kind = listed["name"][:-1]
        for element in listed.get("elem", []):
            inner = element.get("elem", {})
            if "counter" not in inner:
                continue
            counted, value = _counted(inner["counter"]), inner["val"]
            parts = value["concat"] if isinstance(value, dict) and "concat" in value else [value]
            seen = of(parts[0])
            if kind == "all":
                found[str(parts[0])] = seen._replace(total=counted)
            elif kind == "src":
                seen.sources[str(parts[1])] = counted
            elif kind == "port":
                seen.ports[(str(parts[1]), int(parts[2]))] = counted
            else:
                seen.dropped[(str(parts[1]), str(parts[2]), int(parts[3]))] = counted
    return found
