"""How the control plane's way to a node is worked out, and which block rules would cut it (nodes/firewall.py)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from cloudlet.config import Settings
from cloudlet.drivers.base import FirewallAction, FirewallProtocol, NodeRuleSpec
from cloudlet.nodes import firewall


def settings(*sources: str) -> Settings:
    return Settings(_env_file=None, data_dir=Path("/nonexistent"), secret_key="x" * 40,  # type: ignore[call-arg]
                    node_firewall_control_sources=list(sources))


def block(protocol: FirewallProtocol, source: str | None = None, ports: tuple[int, int] | None = None) -> NodeRuleSpec:
    return NodeRuleSpec(FirewallAction.BLOCK, protocol, source, ports)


def test_each_kind_of_node_is_managed_on_its_own_ports() -> None:
    assert firewall.management_ports("qemu:///system") == {22: "SSH"}
    assert firewall.management_ports("qemu+ssh://root@hv1.example.net/system") == {22: "SSH, which carries libvirt"}
    assert firewall.management_ports("qemu+ssh://hv1.example.net:2222/system") == {2222: "SSH, which carries libvirt"}
    assert firewall.management_ports("qemu+tls://hv1.example.net/system") == {22: "SSH", 16514: "libvirt over TLS"}
    assert firewall.management_ports("qemu+tcp://hv1.example.net/system") == {22: "SSH", 16509: "libvirt"}


def test_a_remote_nodes_control_plane_is_this_machines_source_address_unless_set() -> None:
    assert firewall.route_source("127.0.0.1") == "127.0.0.1"  # the kernel's route lookup, no packet sent
    assert firewall.route_source("no-such-node.invalid") is None
    found = firewall.control_plane(settings(), "qemu+ssh://127.0.0.1/system")
    assert found.sources == (ipaddress.ip_network("127.0.0.1/32"),) and not found.loopback
    assert firewall.control_plane(settings(), "qemu+ssh://no-such-node.invalid/system").sources == ()
    chosen = firewall.control_plane(settings("198.51.100.0/28"), "qemu+tls://127.0.0.1/system")
    assert chosen.sources == (ipaddress.ip_network("198.51.100.0/28"),) and set(chosen.ports) == {22, 16514}
    local = firewall.control_plane(settings(), "qemu:///system")
    assert local.sources == () and local.loopback  # no route lookup: the node is this machine


def test_only_block_rules_that_reach_a_management_port_from_the_control_plane_cut_it() -> None:
    plane = firewall.control_plane(settings("198.51.100.0/28"), "qemu+tls://hv1.example.net/system")
    assert "198.51.100.0/28 on tcp port 22 (SSH)" in (firewall.cut(block(FirewallProtocol.ANY), plane) or "")
    assert "tcp port 16514" in (firewall.cut(block(FirewallProtocol.TCP, "198.51.100.8/29", (16000, 17000)), plane)
                                or "")
    assert firewall.cut(block(FirewallProtocol.TCP, "198.51.100.16/28", (22, 22)), plane) is None  # other sources
    assert firewall.cut(block(FirewallProtocol.TCP, "2001:db8::/32"), plane) is None  # the other family
    assert firewall.cut(block(FirewallProtocol.UDP), plane) is None
    assert firewall.cut(block(FirewallProtocol.ICMP), plane) is None
    assert firewall.cut(block(FirewallProtocol.TCP, None, (23, 16513)), plane) is None
    allow = NodeRuleSpec(FirewallAction.ALLOW, FirewallProtocol.ANY)
    assert firewall.cut(allow, plane) is None
    local = firewall.control_plane(settings(), "qemu:///system")
    assert firewall.cut(block(FirewallProtocol.ANY), local) is None  # loopback is accepted before any rule
    assert "127.0.0.1 (loopback)" in (firewall.cut(block(FirewallProtocol.UDP, "0.0.0.0/1"), local) or "")
    assert firewall.cut(block(FirewallProtocol.ANY, "2001:db8::/32"), local) is None
