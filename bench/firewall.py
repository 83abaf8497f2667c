"""Time replacing the node's firewall table with nft: 1,000 rules on one address, and 1,000 addresses of one rule.

Run: `python -m bench.firewall [--runs 5]`. The table is written in a network namespace of its own (made and
removed here), so the node's real table is not touched; the figures are what `apply_firewalls` costs a node.
"""

from __future__ import annotations

import argparse
import ipaddress
import statistics
import subprocess
import time
import uuid

from cloudlet.drivers.base import AddressFirewall, FirewallAction, FirewallProtocol, FirewallRuleSpec
from cloudlet.drivers.libvirt import firewall


def many_rules(count: int) -> list[AddressFirewall]:
    """One address with count rules: each a source /32 allowed to one port."""
    sources = ipaddress.ip_network("198.51.100.0/24").hosts()
    rules = tuple(FirewallRuleSpec(FirewallAction.ALLOW, FirewallProtocol.TCP, f"{next(sources)}/32",
                                   (1000 + n, 1000 + n)) for n in range(min(count, 250)))
    rules += tuple(FirewallRuleSpec(FirewallAction.BLOCK, FirewallProtocol.UDP, None, (2000 + n, 2000 + n))
                   for n in range(count - len(rules)))
    return [AddressFirewall("203.0.113.10", default_in=FirewallAction.BLOCK, rules=rules)]


def many_addresses(count: int) -> list[AddressFirewall]:
    """count addresses, each allowing SSH and blocking the rest."""
    hosts = ipaddress.ip_network("10.0.0.0/16").hosts()
    return [AddressFirewall(str(next(hosts)), default_in=FirewallAction.BLOCK,
                            rules=(FirewallRuleSpec(FirewallAction.ALLOW, FirewallProtocol.TCP, None, (22, 22)),))
            for _ in range(count)]


def timed(namespace: str, firewalls: list[AddressFirewall], runs: int) -> float:
    """The median seconds of applying the table, runs times."""
    seconds = []
    for _ in range(runs):
        began = time.monotonic()
        firewall.apply(firewalls, namespace=namespace)
        seconds.append(time.monotonic() - began)
    return statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    namespace = f"bench-fw-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", namespace], check=True, timeout=30)
    try:
        empty = timed(namespace, [], args.runs)
        rules = timed(namespace, many_rules(1000), args.runs)
        addresses = timed(namespace, many_addresses(1000), args.runs)
    finally:
        subprocess.run(["ip", "netns", "del", namespace], check=False, timeout=30)
    print(f"nft apply, empty table: {empty * 1000:.0f} ms")
    print(f"nft apply, 1,000 rules on one address: {rules * 1000:.0f} ms")
    print(f"nft apply, 1,000 addresses of one rule each: {addresses * 1000:.0f} ms")


if __name__ == "__main__":
    main()
