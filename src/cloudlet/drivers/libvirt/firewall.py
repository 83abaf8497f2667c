"""Guests' address firewalls in the node's kernel: one nftables table, `inet cloudlet`, replaced whole and at once.

Guests are bridged, so the node asks the bridge to hand its IPv4 and IPv6 frames to the IP hooks
(`net.bridge.bridge-nf-call-iptables` and `-ip6tables`, br_netfilter): the forward hook then sees every packet
to and from a guest with connection tracking, whatever the guest does. Verdict maps send a packet to the chain
of its source address (the outbound policy: blocked, or on to the next step) and then of its destination
address (inbound rules, then the inbound policy), one lookup each however many addresses the node holds.
Replies to allowed traffic pass (conntrack), and so does IPv6 neighbour discovery; ARP is not IP and is never
filtered. Each rule counts its hits.

The table's comment carries the digest of its script, and a node's table is "in force" when that digest and its
number of rules are what Cloudlet wrote: a table deleted, flushed or edited behind Cloudlet's back is not, and
the reconciler writes it again.

The script starts by declaring and deleting the table, so `nft -f` swaps the old rule set for the new one in
a single transaction: a packet meets either the old rules or the new, never a half-written table.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from cloudlet.drivers.base import (
    AddressFirewall,
    FirewallAction,
    FirewallHits,
    FirewallProtocol,
    FirewallRuleSpec,
    GuestFailed,
)

TABLE = "cloudlet"
NFT_SECONDS = 30.0
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


def _rule(rule: FirewallRuleSpec, version: int) -> str:
    parts = []
    if rule.source is not None:
        parts.append(f"{'ip' if version == 4 else 'ip6'} saddr {ipaddress.ip_network(rule.source, strict=False)}")
    if rule.protocol is FirewallProtocol.ICMP:
        parts.append("meta l4proto icmp" if version == 4 else "meta l4proto ipv6-icmp")
    elif rule.protocol is not FirewallProtocol.ANY:
        parts.append(f"meta l4proto {rule.protocol.value}")
    if rule.ports is not None:
        low, high = rule.ports
        parts.append(f"th dport {low}" if low == high else f"th dport {low}-{high}")
    return " ".join([*parts, "counter", _VERDICT[rule.action]])


class TableMark(NamedTuple):
    """What identifies a table Cloudlet wrote: the digest of its script (kept as the table's comment) and how
    many rules it has."""

    digest: str
    rules: int


def _body(firewalls: Sequence[AddressFirewall]) -> tuple[str, int]:
    inbound: dict[int, list[str]] = {4: [], 6: []}
    outbound: dict[int, list[str]] = {4: [], 6: []}
    chains = []
    for firewall in firewalls:
        version = ipaddress.ip_address(firewall.address).version
        key = chain_key(firewall.address)
        inbound[version].append(f"{firewall.address} : jump in{key}")
        outbound[version].append(f"{firewall.address} : jump out{key}")
        first = ["ct state established,related accept", "ct state invalid drop"]
        if version == 6:
            first.append(_NEIGHBOUR_DISCOVERY)
        rules = [_rule(rule, version) for rule in firewall.rules]
        chains.append(_chain(f"in{key}", [*first, *rules, f"counter {_VERDICT[firewall.default_in]}"]))
        # allowed out goes on to the destination's own chain (another guest of this node may have one)
        out = "counter return" if firewall.default_out is FirewallAction.ALLOW else "counter drop"
        chains.append(_chain(f"out{key}", [*first, out]))
    dispatch = ["type filter hook forward priority filter; policy accept;"]
    for version, family in ((4, "ip"), (6, "ip6")):
        if inbound[version]:
            dispatch.append(f"{family} saddr vmap {{ {', '.join(outbound[version])} }}")
            dispatch.append(f"{family} daddr vmap {{ {', '.join(inbound[version])} }}")
    body = "\n".join([_chain("forward", dispatch), *chains])
    return body, sum(line.startswith("    ") and not line.startswith("    type ") for line in body.splitlines())


def mark(firewalls: Sequence[AddressFirewall]) -> TableMark:
    """How the table holding exactly these firewalls is recognised."""
    body, rules = _body(firewalls)
    return TableMark(hashlib.sha256(body.encode()).hexdigest()[:32], rules)


def ruleset(firewalls: Sequence[AddressFirewall]) -> str:
    """The nft script that makes the table hold exactly these firewalls (its mark in the table's comment)."""
    body, _rules = _body(firewalls)
    comment = f'  comment "cloudlet {mark(firewalls).digest}"'
    return f"table inet {TABLE}\ndelete table inet {TABLE}\ntable inet {TABLE} {{\n{comment}\n{body}\n}}\n"


def _nft(namespace: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    command = ["nft", *args]
    if namespace is not None:
        command = ["ip", "netns", "exec", namespace, *command]
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=NFT_SECONDS,  # noqa: S603
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise GuestFailed(f"nft could not read the firewall table: {error}") from error


def live_mark(*, namespace: str | None = None) -> TableMark | None:
    """The mark of the table the kernel holds now: its comment's digest and its rule count (rules flushed, added
    or removed behind Cloudlet's back change the count); None when there is no table."""
    listed = _nft(namespace, "list", "table", "inet", TABLE)
    if listed.returncode != 0:
        return None
    found = re.search(r'^\s*comment "cloudlet (\w+)"', listed.stdout, re.MULTILINE)
    as_json = _nft(namespace, "-j", "list", "table", "inet", TABLE)
    if found is None or as_json.returncode != 0:
        return None
    objects = json.loads(as_json.stdout).get("nftables", [])
    return TableMark(found.group(1), sum("rule" in item for item in objects))


def _chain(name: str, lines: list[str]) -> str:
    return f"  chain {name} {{\n" + "".join(f"    {line}\n" for line in lines) + "  }"


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
    command = ["nft", "-f", "-"]
    if namespace is not None:
        command = ["ip", "netns", "exec", namespace, *command]
    try:
        done = subprocess.run(command, input=ruleset(firewalls), capture_output=True, text=True,  # noqa: S603
                              timeout=NFT_SECONDS, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise GuestFailed(f"nft could not apply the firewall: {error}") from error
    if done.returncode != 0:
        raise GuestFailed(f"nft refused the firewall: {done.stderr.strip()[-1000:]}")


def hits(*, namespace: str | None = None) -> dict[str, FirewallHits]:
    """What each address's inbound rules (in order) and inbound policy have matched since the table was written,
    read from the rules' counters; nothing when there is no table."""
    listed = _nft(namespace, "-j", "list", "table", "inet", TABLE)
    if listed.returncode != 0:
        return {}
    counted: dict[str, list[tuple[int, int]]] = {}
    for item in json.loads(listed.stdout).get("nftables", []):
        rule = item.get("rule")
        if rule is None or not rule.get("chain", "").startswith("in"):
            continue
        for expression in rule.get("expr", []):
            if "counter" in expression:
                counter = expression["counter"]
                counted.setdefault(rule["chain"], []).append((int(counter["packets"]), int(counter["bytes"])))
    return {address_of(chain.removeprefix("in")): FirewallHits(tuple(pairs[:-1]), pairs[-1])
            for chain, pairs in counted.items() if pairs}
