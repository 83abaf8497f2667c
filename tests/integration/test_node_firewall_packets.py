"""A node's own firewall in the kernel, shown with real packets: a stand-in node and a peer, each in a network
namespace of its own, joined by a veth pair; drivers/libvirt/node_firewall.py writes the node namespace's
`inet cloudlet_node` table (never this machine's own). Documentation addresses only, and nothing leaves the two
namespaces."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from cloudlet.drivers.base import FirewallAction, FirewallProtocol, GuestFailed, NodeFirewall, NodeRuleSpec
from cloudlet.drivers.libvirt import node_firewall

NODE, NODE6 = "192.0.2.1", "2001:db8::1"
PEER, FRIEND, CONTROL, PEER6 = "192.0.2.2", "192.0.2.3", "192.0.2.10", "2001:db8::2"
LISTENER = textwrap.dedent("""
    import socket, threading
    def tcp(port):
        server = socket.create_server(("::", port), family=socket.AF_INET6, dualstack_ipv6=True)
        while True:
            connection, _ = server.accept()
            connection.sendall(b"hi%d" % port)
            connection.close()
    for port in (22, 8080, 9090):
        threading.Thread(target=tcp, args=(port,), daemon=True).start()
    print("listening", flush=True)
    threading.Event().wait()
""")
PROBE = textwrap.dedent("""
    import socket, sys
    source, target, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    try:
        with socket.create_connection((target, port), timeout=1.5, source_address=(source, 0)) as c:
            c.recv(16)
    except OSError:
        sys.exit(1)
""")


def run(*command: str) -> str:
    return subprocess.run(command, check=True, capture_output=True, text=True, timeout=30).stdout


@dataclass
class Wire:
    """The two namespaces."""

    node: str
    peer: str

    def reaches(self, source: str, target: str, port: int) -> bool:
        """Whether a TCP connection from source (an address of the peer's, or of the node's own) gets its answer."""
        namespace = self.peer if source in (PEER, FRIEND, CONTROL, PEER6) else self.node
        probe = subprocess.run(["ip", "netns", "exec", namespace, sys.executable, "-c", PROBE, source, target,
                                str(port)], capture_output=True, timeout=30, check=False)
        return probe.returncode == 0

    def table(self) -> subprocess.CompletedProcess[str]:
        """The node's table as nft lists it."""
        return subprocess.run(["ip", "netns", "exec", self.node, "nft", "list", "table", "inet", "cloudlet_node"],
                              capture_output=True, text=True, timeout=30, check=False)


@pytest.fixture
def wire() -> Iterator[Wire]:
    tag = uuid.uuid4().hex[:6]
    found = Wire(f"nf-n-{tag}", f"nf-p-{tag}")
    listener = None
    try:
        for namespace in (found.node, found.peer):
            run("ip", "netns", "add", namespace)
            run("ip", "-n", namespace, "link", "set", "lo", "up")
        run("ip", "link", "add", f"nfn{tag}", "netns", found.node, "type", "veth", "peer", "name", f"nfp{tag}",
            "netns", found.peer)
        for namespace, device, addresses, address6 in ((found.node, f"nfn{tag}", (NODE,), NODE6),
                                                       (found.peer, f"nfp{tag}", (PEER, FRIEND, CONTROL), PEER6)):
            for address in addresses:
                run("ip", "-n", namespace, "addr", "add", f"{address}/24", "dev", device)
            run("ip", "-n", namespace, "addr", "add", f"{address6}/64", "dev", device, "nodad")
            run("ip", "-n", namespace, "link", "set", device, "up")
        listener = subprocess.Popen(["ip", "netns", "exec", found.node, sys.executable, "-c", LISTENER],
                                    stdout=subprocess.PIPE, text=True)
        assert listener.stdout is not None and listener.stdout.readline().strip() == "listening"
        yield found
    finally:
        if listener is not None:
            listener.kill()
            listener.wait(timeout=10)
        for namespace in (found.node, found.peer):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=30, check=False)


def tcp(action: FirewallAction, port: int, source: str | None = None) -> NodeRuleSpec:
    return NodeRuleSpec(action, FirewallProtocol.TCP, source, (port, port))


WALL = NodeFirewall((tcp(FirewallAction.ALLOW, 8080, f"{FRIEND}/32"),  # an allow before a block that covers it
                     tcp(FirewallAction.BLOCK, 8080, "192.0.2.0/24"),
                     tcp(FirewallAction.BLOCK, 22),  # the service refuses this one; the table still keeps SSH
                     tcp(FirewallAction.BLOCK, 9090, "2001:db8::/64")),  # open for the control plane
                    control_sources=(f"{CONTROL}/32",), control_ports=(22,))


def test_block_rules_drop_and_allows_pass_but_loopback_and_the_control_plane_stay_open(wire: Wire) -> None:
    assert wire.reaches(PEER, NODE, 8080) and wire.reaches(PEER, NODE, 22)  # no table yet
    node_firewall.apply(WALL, namespace=wire.node)
    assert not wire.reaches(PEER, NODE, 8080)  # blocked
    assert wire.reaches(FRIEND, NODE, 8080)  # allowed by the rule before
    assert wire.reaches(PEER, NODE, 9090)  # no rule: the policy lets it in
    assert not wire.reaches(PEER, NODE, 22) and not wire.reaches(FRIEND, NODE, 22)
    assert wire.reaches(CONTROL, NODE, 22)  # the control plane's way in comes before the rules
    assert not wire.reaches(PEER6, NODE6, 9090)  # an IPv6 source rule
    assert wire.reaches(PEER6, NODE6, 8080)  # IPv6 (and its neighbour discovery) otherwise untouched
    for port in (22, 8080, 9090):  # the node reaches itself over loopback, on its own addresses too
        assert wire.reaches("127.0.0.1", "127.0.0.1", port) and wire.reaches(NODE, NODE, port)
    assert wire.reaches("::1", "::1", 8080)
    listed = wire.table().stdout
    assert "hook input" in listed and "iif \"lo\" accept" in listed and "policy accept" in listed
    assert f"ip saddr {CONTROL} tcp dport 22 accept" in listed


def test_the_table_is_recognised_until_changed_behind_its_back_and_goes_with_the_last_rule(wire: Wire) -> None:
    node_firewall.apply(WALL, namespace=wire.node)
    assert node_firewall.in_force(WALL, namespace=wire.node)
    assert not node_firewall.in_force(NodeFirewall(WALL.rules[:2]), namespace=wire.node)
    assert not node_firewall.in_force(NodeFirewall(), namespace=wire.node)
    run("ip", "netns", "exec", wire.node, "nft", "flush", "table", "inet", "cloudlet_node")
    assert not node_firewall.in_force(WALL, namespace=wire.node)
    assert wire.reaches(PEER, NODE, 8080)  # nothing filters now: what the reconciler must notice
    node_firewall.apply(WALL, namespace=wire.node)
    assert not wire.reaches(PEER, NODE, 8080)
    node_firewall.apply(NodeFirewall(), namespace=wire.node)  # no rules: no table
    assert wire.table().returncode != 0 and node_firewall.in_force(NodeFirewall(), namespace=wire.node)
    assert wire.reaches(PEER, NODE, 8080)
    node_firewall.apply(NodeFirewall(), namespace=wire.node)  # idempotent: no table is fine


def test_a_table_nft_refuses_leaves_the_one_before(wire: Wire, monkeypatch: pytest.MonkeyPatch) -> None:
    node_firewall.apply(WALL, namespace=wire.node)
    written = node_firewall.ruleset
    monkeypatch.setattr(node_firewall, "ruleset", lambda wall: written(wall).replace("counter accept", "counter acept"))
    with pytest.raises(GuestFailed, match="nft refused"):
        node_firewall.apply(NodeFirewall((tcp(FirewallAction.ALLOW, 9090),)), namespace=wire.node)
    assert not wire.reaches(PEER, NODE, 8080) and node_firewall.in_force(WALL, namespace=wire.node)


def test_an_icmp_rule_without_a_source_matches_both_families() -> None:
    script = node_firewall.ruleset(NodeFirewall((NodeRuleSpec(FirewallAction.BLOCK, FirewallProtocol.ICMP),)))
    assert "meta l4proto { icmp, ipv6-icmp } counter drop" in script
    assert socket.has_ipv6
