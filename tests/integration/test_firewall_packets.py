"""Address firewalls in the kernel, shown with real packets: a test host and a stand-in guest, each in a network
namespace of its own, plugged into a bridge in a third, whose `inet cloudlet` table drivers/libvirt/firewall.py
writes (br_netfilter hands the bridged frames to the IP hooks, as on a node). Documentation addresses only, and
nothing leaves the three namespaces."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from cloudlet.drivers.base import (
    AddressFirewall,
    FirewallAction,
    FirewallProtocol,
    FirewallRuleSpec,
    GuestFailed,
    RateLimit,
    RateUnit,
)
from cloudlet.drivers.libvirt import firewall

GUEST, HOST, OTHER = "198.51.100.20", "198.51.100.10", "198.51.100.11"
LISTENER = textwrap.dedent("""
    import socket, threading
    def tcp(port):
        server = socket.create_server(("0.0.0.0", port))
        while True:
            connection, _ = server.accept()
            connection.sendall(b"hi%d" % port)
            connection.close()
    def udp(port):
        server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        server.bind(("0.0.0.0", port))
        while True:
            data, peer = server.recvfrom(64)
            server.sendto(data, peer)
    for port in (8080, 9090):
        threading.Thread(target=tcp, args=(port,), daemon=True).start()
    threading.Thread(target=udp, args=(5353,), daemon=True).start()
    print("listening", flush=True)
    threading.Event().wait()
""")
PROBE = textwrap.dedent("""
    import socket, sys
    kind, source, target, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    try:
        if kind == "tcp":
            with socket.create_connection((target, port), timeout=1.5, source_address=(source, 0)) as c:
                c.recv(16)
        else:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
                c.bind((source, 0))
                c.settimeout(1.5)
                c.sendto(b"ping", (target, port))
                c.recvfrom(64)
    except OSError:
        sys.exit(1)
""")


def run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=30)


@dataclass
class Wire:
    """The three namespaces."""

    host: str
    guest: str
    bridge: str

    def reaches(self, kind: str, source: str, target: str, port: int) -> bool:
        """Whether a TCP connection (or a UDP exchange) from source to target:port gets its answer."""
        namespace = self.host if source in (HOST, OTHER) else self.guest
        probe = subprocess.run(["ip", "netns", "exec", namespace, sys.executable, "-c", PROBE, kind, source, target,
                                str(port)], capture_output=True, timeout=30, check=False)
        return probe.returncode == 0

    def apply(self, *firewalls: AddressFirewall) -> None:
        """Write the node's table in the bridge's namespace."""
        firewall.apply(firewalls, namespace=self.bridge)


@pytest.fixture
def wire() -> Iterator[Wire]:
    tag = uuid.uuid4().hex[:6]
    found = Wire(f"fw-h-{tag}", f"fw-g-{tag}", f"fw-b-{tag}")
    listener = None
    try:
        for namespace in (found.host, found.guest, found.bridge):
            run("ip", "netns", "add", namespace)
            run("ip", "-n", namespace, "link", "set", "lo", "up")
        run("ip", "-n", found.bridge, "link", "add", "br0", "type", "bridge")
        run("ip", "-n", found.bridge, "link", "set", "br0", "up")
        for end, namespace, addresses in (("h", found.host, (HOST, OTHER)), ("g", found.guest, (GUEST,))):
            run("ip", "link", "add", f"fw{end}{tag}", "netns", namespace, "type", "veth", "peer", "name", f"p{end}",
                "netns", found.bridge)
            run("ip", "-n", found.bridge, "link", "set", f"p{end}", "master", "br0", "up")
            for address in addresses:
                run("ip", "-n", namespace, "addr", "add", f"{address}/24", "dev", f"fw{end}{tag}")
            run("ip", "-n", namespace, "link", "set", f"fw{end}{tag}", "up")
        # what bridge_to_ip_hooks does on a node (sysctls are the namespace's own)
        run("ip", "netns", "exec", found.bridge, "sh", "-c", "echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables; "
            "echo 1 > /proc/sys/net/bridge/bridge-nf-call-ip6tables")
        listener = subprocess.Popen(["ip", "netns", "exec", found.guest, sys.executable, "-c", LISTENER],
                                    stdout=subprocess.PIPE, text=True)
        assert listener.stdout is not None and listener.stdout.readline().strip() == "listening"
        # a listener on the host side too, for the guest's own connections out
        host_listener = subprocess.Popen(["ip", "netns", "exec", found.host, sys.executable, "-c", LISTENER],
                                         stdout=subprocess.PIPE, text=True)
        assert host_listener.stdout is not None and host_listener.stdout.readline().strip() == "listening"
        yield found
        host_listener.kill()
        host_listener.wait(timeout=10)
    finally:
        if listener is not None:
            listener.kill()
            listener.wait(timeout=10)
        for namespace in (found.host, found.guest, found.bridge):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=30, check=False)


def allow(protocol: FirewallProtocol, port: int | None = None, source: str | None = None) -> FirewallRuleSpec:
    return FirewallRuleSpec(FirewallAction.ALLOW, protocol, source, None if port is None else (port, port))


def test_without_rules_everything_passes(wire: Wire) -> None:
    wire.apply(AddressFirewall(GUEST))
    assert wire.reaches("tcp", HOST, GUEST, 8080) and wire.reaches("tcp", HOST, GUEST, 9090)
    assert wire.reaches("udp", HOST, GUEST, 5353) and wire.reaches("tcp", GUEST, HOST, 8080)


def test_rules_decide_in_order_and_the_policy_takes_the_rest(wire: Wire) -> None:
    wire.apply(AddressFirewall(GUEST, default_in=FirewallAction.BLOCK, rules=(
        FirewallRuleSpec(FirewallAction.BLOCK, FirewallProtocol.ANY, f"{OTHER}/32"),  # a blocked source first
        allow(FirewallProtocol.TCP, 8080),
        allow(FirewallProtocol.UDP, 5353, "198.51.100.0/28"))))
    assert wire.reaches("tcp", HOST, GUEST, 8080)
    assert not wire.reaches("tcp", HOST, GUEST, 9090)  # the policy blocks it
    assert not wire.reaches("tcp", OTHER, GUEST, 8080)  # the first rule blocks this source
    assert wire.reaches("udp", HOST, GUEST, 5353)
    assert wire.reaches("tcp", GUEST, HOST, 9090)  # the guest's own connections out, and their replies, pass


def test_a_blocked_outbound_policy_still_lets_replies_out(wire: Wire) -> None:
    wire.apply(AddressFirewall(GUEST, default_out=FirewallAction.BLOCK))
    assert wire.reaches("tcp", HOST, GUEST, 8080)  # the reply is part of a connection the host opened
    assert not wire.reaches("tcp", GUEST, HOST, 8080)
    assert not wire.reaches("udp", GUEST, HOST, 5353)


def test_a_new_rule_set_replaces_the_old_one_whole(wire: Wire) -> None:
    wire.apply(AddressFirewall(GUEST, default_in=FirewallAction.BLOCK, rules=(allow(FirewallProtocol.TCP, 9090),)))
    assert wire.reaches("tcp", HOST, GUEST, 9090) and not wire.reaches("tcp", HOST, GUEST, 8080)
    wire.apply(AddressFirewall(GUEST, default_in=FirewallAction.BLOCK, rules=(allow(FirewallProtocol.TCP, 8080),)))
    assert wire.reaches("tcp", HOST, GUEST, 8080) and not wire.reaches("tcp", HOST, GUEST, 9090)
    wire.apply()  # no firewall at all: the table is empty
    assert wire.reaches("tcp", HOST, GUEST, 9090)
    listed = subprocess.run(["ip", "netns", "exec", wire.bridge, "nft", "list", "table", "inet", "cloudlet"],
                            capture_output=True, text=True, timeout=30, check=True).stdout
    assert "jump" not in listed


def test_a_table_nft_refuses_leaves_the_one_before(wire: Wire, monkeypatch: pytest.MonkeyPatch) -> None:
    wire.apply(AddressFirewall(GUEST, default_in=FirewallAction.BLOCK, rules=(allow(FirewallProtocol.TCP, 8080),)))
    written = firewall.ruleset
    # a script nft rejects halfway through (past the deletion of the old table): one transaction, nothing applied
    monkeypatch.setattr(firewall, "ruleset",
                        lambda walls, table: written(walls, table).replace("counter drop", "counter dorp"))
    with pytest.raises(GuestFailed, match="nft refused"):
        wire.apply(AddressFirewall(GUEST, default_in=FirewallAction.BLOCK, rules=(allow(FirewallProtocol.TCP, 9090),)))
    assert wire.reaches("tcp", HOST, GUEST, 8080) and not wire.reaches("tcp", HOST, GUEST, 9090)


def test_the_table_is_recognised_until_it_is_changed_behind_its_back(wire: Wire) -> None:
    walls = [AddressFirewall(GUEST, default_in=FirewallAction.BLOCK, rules=(allow(FirewallProtocol.TCP, 8080),))]
    wire.apply(*walls)
    assert firewall.live_mark(namespace=wire.bridge) == firewall.mark(walls)
    assert firewall.live_mark(namespace=wire.bridge) != firewall.mark([])
    run("ip", "netns", "exec", wire.bridge, "nft", "flush", "table", "inet", "cloudlet")  # rules gone, table kept
    assert firewall.live_mark(namespace=wire.bridge) != firewall.mark(walls)
    assert wire.reaches("tcp", HOST, GUEST, 9090)  # nothing filters now: what the reconciler must notice
    run("ip", "netns", "exec", wire.bridge, "nft", "delete", "table", "inet", "cloudlet")
    assert firewall.live_mark(namespace=wire.bridge) is None


def test_each_rule_and_the_policy_count_what_they_matched(wire: Wire) -> None:
    wire.apply(AddressFirewall(GUEST, default_in=FirewallAction.BLOCK, rules=(
        allow(FirewallProtocol.TCP, 8080), allow(FirewallProtocol.UDP, 5353))))
    assert firewall.hits(namespace=wire.bridge)[GUEST].rules == ((0, 0), (0, 0))
    assert wire.reaches("tcp", HOST, GUEST, 8080) and not wire.reaches("tcp", HOST, GUEST, 9090)
    counted = firewall.hits(namespace=wire.bridge)[GUEST]
    assert counted.rules[0][0] == 1 and counted.rules[1] == (0, 0)  # one SYN let in; replies are not counted
    assert counted.policy[0] >= 1  # the SYN to 9090 (and its retries) refused by the policy


def test_the_first_rule_that_matches_decides_among_overlapping_rules(wire: Wire) -> None:
    wide_block = FirewallRuleSpec(FirewallAction.BLOCK, FirewallProtocol.TCP, None, (8000, 9000))
    wire.apply(AddressFirewall(GUEST, rules=(allow(FirewallProtocol.TCP, 8080, f"{HOST}/32"), wide_block)))
    assert wire.reaches("tcp", HOST, GUEST, 8080) and not wire.reaches("tcp", OTHER, GUEST, 8080)
    wire.apply(AddressFirewall(GUEST, rules=(wide_block, allow(FirewallProtocol.TCP, 8080, f"{HOST}/32"))))
    assert not wire.reaches("tcp", HOST, GUEST, 8080)


def test_hundreds_of_rules_are_one_lookup_each_run(wire: Wire) -> None:
    blocked = [FirewallRuleSpec(FirewallAction.BLOCK, FirewallProtocol.ANY, f"192.0.2.{n}/32") for n in range(1, 250)]
    ports = [FirewallRuleSpec(FirewallAction.BLOCK, FirewallProtocol.UDP, None, (n, n)) for n in range(20000, 20250)]
    wire.apply(AddressFirewall(GUEST, default_in=FirewallAction.BLOCK,
                               rules=(*blocked, *ports, allow(FirewallProtocol.TCP, 8080))))
    listed = subprocess.run(["ip", "netns", "exec", wire.bridge, "nft", "list", "chain", "inet", "cloudlet",
                             "in4_198_51_100_20"], capture_output=True, text=True, timeout=30, check=True).stdout
    # 500 rules in two runs (a packet from 192.0.2.5 to UDP 20001 meets a rule of each): two lookups
    assert listed.count("vmap @m4_") == 2
    assert wire.reaches("tcp", HOST, GUEST, 8080) and not wire.reaches("tcp", HOST, GUEST, 9090)
    assert firewall.hits(namespace=wire.bridge)[GUEST].rules[-1][0] == 1


BURST = textwrap.dedent("""
    import socket, sys, concurrent.futures
    source, target, port, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    def connect(_):
        try:
            with socket.create_connection((target, port), timeout=0.8, source_address=(source, 0)) as c:
                return c.recv(16).startswith(b"hi")
        except OSError:
            return False
    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        print(sum(pool.map(connect, range(count))))
""")


def test_a_rate_limited_source_is_cut_at_its_limit_and_others_are_not(wire: Wire) -> None:
    limited = FirewallRuleSpec(FirewallAction.ALLOW, FirewallProtocol.TCP, None, (8080, 8080),
                               RateLimit(3, RateUnit.CONNECTIONS))
    wire.apply(AddressFirewall(GUEST, default_in=FirewallAction.BLOCK, rules=(limited,)))
    burst = subprocess.run(["ip", "netns", "exec", wire.host, sys.executable, "-c", BURST, HOST, GUEST, "8080", "20"],
                           capture_output=True, text=True, timeout=60, check=True)
    answered = int(burst.stdout)
    assert 3 <= answered <= 6  # the burst of 3, and at most what 3 a second adds while the attempts last
    assert wire.reaches("tcp", OTHER, GUEST, 8080)  # another source has a limit of its own
    dropped = firewall.traffic(namespace=wire.bridge)[GUEST].dropped
    assert dropped[(HOST, "tcp", 8080)].packets >= 20 - answered


def test_what_reached_an_address_is_counted_by_source_and_port(wire: Wire) -> None:
    wire.apply(AddressFirewall(GUEST, rules=(FirewallRuleSpec(FirewallAction.BLOCK, FirewallProtocol.TCP, None,
                                                              (9090, 9090)),)))
    for _ in range(3):
        assert wire.reaches("tcp", HOST, GUEST, 8080)
    assert wire.reaches("udp", OTHER, GUEST, 5353)
    assert not wire.reaches("tcp", OTHER, GUEST, 9090)
    seen = firewall.traffic(namespace=wire.bridge)[GUEST]
    assert seen.sources[HOST].packets >= 3 * 3  # SYN, ACK, FIN (at least) of three connections
    assert seen.sources[HOST].bytes > seen.sources[OTHER].bytes > 0
    assert seen.ports[("tcp", 8080)].packets >= 9 and seen.ports[("udp", 5353)].packets == 1
    assert seen.total.packets >= sum(counted.packets for counted in seen.sources.values())
    assert (HOST, "tcp", 8080) not in seen.dropped and seen.dropped[(OTHER, "tcp", 9090)].packets >= 1
