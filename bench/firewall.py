"""Time replacing the node's firewall table with nft (1,000 rules on one address, 1,000 addresses of one rule),
what 1,000 rules cost a guest's bulk throughput, and what reading the visibility counters of 100 addresses costs.

Run: `python -m bench.firewall [--runs 5]`. Tables are written in network namespaces of their own (made and
removed here), so the node's real table is not touched. For throughput, a sender and a receiver namespace are
bridged through a third that holds the table (br_netfilter hands it the bridged frames, as on a node), and the
sender pushes BULK_BYTES over TCP to the receiver's address, whose 1,000 rules the packets meet; the allowed
port is the last rule. Visibility: 100 addresses whose source sets hold SOURCES_EACH sources each, read
(`firewall.traffic`, one `nft -j list table`) and turned into samples (shield/visibility.py's arithmetic).
"""

from __future__ import annotations

import argparse
import ipaddress
import statistics
import subprocess
import sys
import time
import uuid

from cloudlet.drivers.base import AddressFirewall, FirewallAction, FirewallProtocol, FirewallRuleSpec
from cloudlet.drivers.libvirt import firewall
from cloudlet.kit import clock
from cloudlet.shield import visibility

BULK_BYTES = 400_000_000
SOURCES_EACH = 100
SENDER, RECEIVER = "192.0.2.10", "192.0.2.20"
RECEIVE = """
import socket
server = socket.create_server(("0.0.0.0", 5001))
print("listening", flush=True)
while True:
    connection, _ = server.accept()
    while connection.recv(1 << 20):
        pass
    connection.sendall(b"done")
    connection.close()
"""
SEND = """
import socket, sys, time
chunk = b"x" * (1 << 20)
with socket.create_connection((sys.argv[1], 5001), timeout=60) as c:
    began = time.monotonic()
    for _ in range(int(sys.argv[2]) // len(chunk)):
        c.sendall(chunk)
    c.shutdown(socket.SHUT_WR)
    c.recv(16)
    print(time.monotonic() - began)
"""


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


def run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=30)


def throughput(runs: int) -> tuple[float, float]:
    """Median Mbit/s of a bulk transfer to the receiver without a table, and with its 1,000 rules."""
    tag = uuid.uuid4().hex[:6]
    sender, receiver, bridge = (f"bench-{role}-{tag}" for role in ("s", "r", "b"))
    listener = None
    try:
        for namespace in (sender, receiver, bridge):
            run("ip", "netns", "add", namespace)
        run("ip", "-n", bridge, "link", "add", "br0", "type", "bridge")
        run("ip", "-n", bridge, "link", "set", "br0", "up")
        for end, namespace, address in (("s", sender, SENDER), ("r", receiver, RECEIVER)):
            run("ip", "link", "add", f"b{end}{tag}", "netns", namespace, "type", "veth", "peer", "name", f"p{end}",
                "netns", bridge)
            run("ip", "-n", bridge, "link", "set", f"p{end}", "master", "br0", "up")
            run("ip", "-n", namespace, "addr", "add", f"{address}/24", "dev", f"b{end}{tag}")
            run("ip", "-n", namespace, "link", "set", f"b{end}{tag}", "up")
        run("ip", "netns", "exec", bridge, "sh", "-c", "echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables")
        listener = subprocess.Popen(["ip", "netns", "exec", receiver, sys.executable, "-c", RECEIVE],
                                    stdout=subprocess.PIPE, text=True)
        assert listener.stdout is not None and listener.stdout.readline().strip() == "listening"

        def mbit() -> float:
            seconds = []
            for _ in range(runs):
                sent = subprocess.run(["ip", "netns", "exec", sender, sys.executable, "-c", SEND, RECEIVER,
                                       str(BULK_BYTES)], capture_output=True, text=True, timeout=300, check=True)
                seconds.append(float(sent.stdout))
            return BULK_BYTES * 8 / statistics.median(seconds) / 1e6

        firewall.apply([], namespace=bridge)
        bare = mbit()
        sources = ipaddress.ip_network("198.51.100.0/24").hosts()
        rules = tuple(FirewallRuleSpec(FirewallAction.BLOCK, FirewallProtocol.ANY, f"{next(sources)}/32")
                      for _ in range(250))
        rules += tuple(FirewallRuleSpec(FirewallAction.BLOCK, FirewallProtocol.UDP, None, (2000 + n, 2000 + n))
                       for n in range(749))
        rules += (FirewallRuleSpec(FirewallAction.ALLOW, FirewallProtocol.TCP, None, (5001, 5001)),)
        firewall.apply([AddressFirewall(RECEIVER, default_in=FirewallAction.BLOCK, rules=rules)], namespace=bridge)
        filtered = mbit()
        assert firewall.hits(namespace=bridge)[RECEIVER].rules[-1][0] > 0  # the transfer met the last rule
        return bare, filtered
    finally:
        if listener is not None:
            listener.kill()
            listener.wait(timeout=10)
        for namespace in (sender, receiver, bridge):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False, timeout=30)


def sampling(namespace: str, runs: int) -> float:
    """Median seconds of reading and sampling 100 addresses' counters, SOURCES_EACH sources each."""
    walls = many_addresses(100)
    firewall.apply(walls, namespace=namespace)
    script = []
    for wall in walls:
        elements = ", ".join(f"{wall.address} . 198.51.{n // 250}.{n % 250 + 1}" for n in range(SOURCES_EACH))
        script.append(f"add element inet cloudlet src4 {{ {elements} }}")
    subprocess.run(["ip", "netns", "exec", namespace, "nft", "-f", "-"], input="\n".join(script) + "\n",
                   text=True, check=True, timeout=60)
    seconds = []
    for _ in range(runs):
        began = time.monotonic()
        counted = firewall.traffic(namespace=namespace)
        for number, (_address, now) in enumerate(counted.items()):
            visibility.samples_between(number, now, None, clock.now())  # the sampler's arithmetic
        seconds.append(time.monotonic() - began)
    assert sum(len(now.sources) for now in counted.values()) == 100 * SOURCES_EACH
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
        sampled = sampling(namespace, args.runs)
    finally:
        subprocess.run(["ip", "netns", "del", namespace], check=False, timeout=30)
    bare, filtered = throughput(max(1, args.runs // 2))
    print(f"nft apply, empty table: {empty * 1000:.0f} ms")
    print(f"nft apply, 1,000 rules on one address: {rules * 1000:.0f} ms")
    print(f"nft apply, 1,000 addresses of one rule each: {addresses * 1000:.0f} ms")
    print(f"visibility, reading and sampling 100 addresses ({SOURCES_EACH} sources each): {sampled * 1000:.0f} ms")
    print(f"bulk TCP through the bridge: {bare:.0f} Mbit/s without a table, {filtered:.0f} Mbit/s through "
          f"1,000 rules ({(bare - filtered) / bare * 100:+.1f} % cost)")


if __name__ == "__main__":
    main()
