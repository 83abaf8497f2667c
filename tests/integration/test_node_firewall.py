"""A node's own firewall on the Shardlyn surface (/v1/nodes/{id}/firewall/rules, administrators only): rules
recorded, pushed to the node (the fake's) after the request commits and written again by the reconciler when
the node loses them; bad input, the refusal of a rule that would cut the control plane off, remote nodes and
strangers. The real table, with real packets: tests/integration/test_node_firewall_packets.py."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from cloudlet.drivers.base import FirewallAction, FirewallProtocol, NodeFirewall, NodeRuleSpec
from cloudlet.nodes import repository
from tests.cloud import Cloud, wait_for
from tests.helpers import make_user

CONTROL = "192.0.2.10"
ANY_NODE = {"capacity": {"vcpu": 4, "memory_mib": 8192, "disk_gib": 100}, "region": "dc1"}


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"node_firewall_control_sources": [CONTROL], "node_firewall_reconcile_schedule": "* * * * * *"}


@pytest.fixture
def node_uri() -> str:
    return "qemu:///system"  # the local node: the only one whose kernel this control plane writes


def admin(cloud: Cloud) -> httpx.Client:
    return cloud.api.as_(make_user(cloud.runtime, "ops@example.com", admin=True).token)


def rules_url(node_id: int) -> str:
    return f"/v1/nodes/{node_id}/firewall/rules"


def wall(*rules: NodeRuleSpec) -> NodeFirewall:
    """What the node enforces with these rules, behind the control plane's way in (SSH from CONTROL)."""
    return NodeFirewall(rules, (f"{CONTROL}/32",), (22,))


def test_rules_are_listed_in_order_and_the_node_enforces_them(cloud: Cloud) -> None:
    client, url = admin(cloud), rules_url(cloud.node_id)
    assert client.get(url).json() == {"rules": []}
    mysql = client.post(url, json={"action": "block", "protocol": "tcp", "port": 3306, "comment": "no MySQL"})
    assert mysql.status_code == 201, mysql.text
    assert {k: v for k, v in mysql.json().items() if k not in ("id", "created_at")} == {
        "action": "block", "protocol": "tcp", "source": None, "port": 3306, "port_end": None, "comment": "no MySQL"}
    media = client.post(url, json={"action": "allow", "protocol": "udp", "source": "2001:db8::/32", "port": 6000,
                                   "port_end": 6010}).json()
    ping = client.post(url, json={"action": "block", "protocol": "icmp", "source": "203.0.113.7"}).json()
    assert (ping["source"], ping["port"]) == ("203.0.113.7/32", None)
    assert [rule["id"] for rule in client.get(url).json()["rules"]] == [mysql.json()["id"], media["id"], ping["id"]]
    expected = wall(NodeRuleSpec(FirewallAction.BLOCK, FirewallProtocol.TCP, None, (3306, 3306)),
                    NodeRuleSpec(FirewallAction.ALLOW, FirewallProtocol.UDP, "2001:db8::/32", (6000, 6010)),
                    NodeRuleSpec(FirewallAction.BLOCK, FirewallProtocol.ICMP, "203.0.113.7/32"))
    wait_for(lambda: cloud.driver.node_firewall == expected)

    assert client.delete(url, params={"rule_id": mysql.json()["id"]}).status_code == 204
    assert client.request("DELETE", url, json={"id": media["id"]}).status_code == 204
    assert [rule["id"] for rule in client.get(url).json()["rules"]] == [ping["id"]]
    wait_for(lambda: cloud.driver.node_firewall == wall(expected.rules[2]))
    assert client.delete(url, params={"rule_id": ping["id"]}).status_code == 204
    wait_for(lambda: cloud.driver.node_firewall is None)  # no rules: no table at all

    # each change was pushed by an action on the node, which records its end
    def pushes() -> list[dict[str, Any]]:
        listed = client.get("/api/admin/actions", params={"running": "false", "limit": 1000}).json()
        return [action for action in listed if action["command"] == "node_firewall_push"]

    wait_for(lambda: [push["status"] for push in pushes()] == ["success"] * 6)
    assert {(push["node_id"], push["instance_id"], push["progress"]) for push in pushes()} == {
        (cloud.node_id, None, 100)}


def test_the_reconciler_writes_a_table_lost_behind_its_back(cloud: Cloud) -> None:
    client, url = admin(cloud), rules_url(cloud.node_id)
    client.post(url, json={"action": "block", "protocol": "tcp", "port": 25})
    expected = wall(NodeRuleSpec(FirewallAction.BLOCK, FirewallProtocol.TCP, None, (25, 25)))
    wait_for(lambda: cloud.driver.node_firewall == expected)
    cloud.driver.node_firewall = None  # flushed on the node
    wait_for(lambda: cloud.driver.node_firewall == expected)


@pytest.mark.parametrize(("body", "says"), [
    ({"action": "block", "protocol": "tcp", "source": "198.51.100.5/24"}, "CIDR"),
    ({"action": "block", "protocol": "tcp", "source": "not-a-network"}, "CIDR"),
    ({"action": "block", "port": 80}, "tcp and udp only"),  # the protocol defaults to any
    ({"action": "block", "protocol": "icmp", "port": 80}, "tcp and udp only"),
    ({"action": "block", "protocol": "tcp", "port": 90, "port_end": 80}, "below port"),
    ({"action": "block", "protocol": "tcp", "port_end": 80}, "needs port"),
    ({"action": "block", "protocol": "tcp", "port": 0}, "port"),
    ({"action": "block", "protocol": "tcp", "port": 70000}, "port"),
    ({"action": "block", "protocol": "sctp"}, "protocol"),
    ({"action": "deny", "protocol": "tcp"}, "action"),
    ({"protocol": "tcp"}, "action"),
    ({"action": "block", "protocol": "tcp", "port": 80, "direction": "out"}, "direction"),
])
def test_bad_rules_are_400_and_change_nothing(cloud: Cloud, body: dict[str, Any], says: str) -> None:
    client, url = admin(cloud), rules_url(cloud.node_id)
    refused = client.post(url, json=body)
    assert refused.status_code == 400, refused.text
    assert says in refused.json()["error"]
    assert client.get(url).json() == {"rules": []}


def test_a_delete_names_one_existing_rule(cloud: Cloud) -> None:
    client, url = admin(cloud), rules_url(cloud.node_id)
    rule = client.post(url, json={"action": "block", "protocol": "tcp", "port": 25}).json()
    answers = [client.delete(url), client.request("DELETE", url, params={"rule_id": rule["id"]}, json={"id": 999}),
               client.delete(url, params={"rule_id": "x"}), client.delete(url, params={"rule_id": 0}),
               client.request("DELETE", url, json={"id": "x"})]
    assert [a.status_code for a in answers] == [400] * 5
    assert "Name one rule" in answers[0].json()["error"] and "different rules" in answers[1].json()["error"]
    assert client.delete(url, params={"rule_id": 999999}).json() == {"error": "Rule not found."}
    assert client.post(url, json={"action": "block", "protocol": "tcp", "port": 25}).status_code == 409  # twice
    assert [r["id"] for r in client.get(url).json()["rules"]] == [rule["id"]]


@pytest.mark.parametrize(("body", "says"), [
    ({"action": "block", "protocol": "tcp", "port": 22, "source": "192.0.2.0/24"}, f"{CONTROL} on tcp port 22"),
    ({"action": "block"}, f"{CONTROL} on tcp port 22 (SSH)"),
    ({"action": "block", "protocol": "tcp", "port": 20, "port_end": 25, "source": f"{CONTROL}/32"}, "tcp port 22"),
    ({"action": "block", "protocol": "tcp", "port": 5432, "source": "127.0.0.0/8"}, "127.0.0.1 (loopback)"),
    ({"action": "block", "protocol": "any", "source": "::1"}, "::1 (loopback)"),
])
def test_a_rule_that_would_cut_the_control_plane_off_is_refused(cloud: Cloud, body: dict[str, Any],
                                                                says: str) -> None:
    client, url = admin(cloud), rules_url(cloud.node_id)
    refused = client.post(url, json=body)
    assert refused.status_code == 409, refused.text
    assert "cut the control plane off" in refused.json()["error"] and says in refused.json()["error"]
    assert client.get(url).json() == {"rules": []}


def test_rules_that_leave_the_control_plane_its_way_are_taken(cloud: Cloud) -> None:
    client, url = admin(cloud), rules_url(cloud.node_id)
    for body in ({"action": "allow", "protocol": "tcp", "port": 22, "source": "192.0.2.0/24"},
                 {"action": "block", "protocol": "tcp", "port": 22, "source": "198.51.100.0/24"},
                 {"action": "block", "protocol": "udp", "source": "192.0.2.0/24"},
                 {"action": "block", "protocol": "tcp", "port": 23, "port_end": 3000},
                 {"action": "block", "protocol": "any", "source": "2001:db8::/32"}):
        assert client.post(url, json=body).status_code == 201, body
    assert len(client.get(url).json()["rules"]) == 5


def test_a_remote_node_cannot_be_written_yet(cloud: Cloud) -> None:
    client = admin(cloud)
    ssh = client.post("/v1/nodes", json=ANY_NODE | {"name": "hv-ssh", "uri": "qemu+ssh://root@hv2.example.net/system"})
    tls = client.post("/v1/nodes", json=ANY_NODE | {"name": "hv-tls", "uri": "qemu+tls://hv3.example.net:16600/system"})
    refused = client.post(rules_url(ssh.json()["id"]), json={"action": "block", "protocol": "tcp", "port": 80})
    assert refused.status_code == 409 and "node agent" in refused.json()["error"], refused.text
    assert "hv-ssh" in refused.json()["error"]
    cut = client.post(rules_url(ssh.json()["id"]), json={"action": "block", "protocol": "tcp", "port": 22})
    assert cut.status_code == 409 and f"{CONTROL} on tcp port 22 (SSH, which carries libvirt)" in cut.json()["error"]
    cut = client.post(rules_url(tls.json()["id"]), json={"action": "block", "protocol": "tcp", "port": 16600})
    assert cut.status_code == 409 and "tcp port 16600 (libvirt over TLS)" in cut.json()["error"]
    assert client.get(rules_url(ssh.json()["id"])).json() == {"rules": []}


def test_only_administrators_reach_a_nodes_firewall_and_a_missing_node_is_404(cloud: Cloud) -> None:
    url = rules_url(cloud.node_id)
    customer = cloud.client()
    answers = [customer.get(url), customer.post(url, json={"action": "block", "protocol": "tcp", "port": 25}),
               customer.delete(url, params={"rule_id": 1})]
    assert [a.status_code for a in answers] == [403] * 3
    assert answers[0].json() == {"error": "Administrator access is required."}
    client = admin(cloud)
    missing = [client.get(rules_url(999999)), client.post(rules_url(999999), json={"action": "block"}),
               client.delete(rules_url(999999), params={"rule_id": 1})]
    assert [a.status_code for a in missing] == [404] * 3
    assert client.get(url).json() == {"rules": []}


def test_a_deleted_node_takes_its_rules_along(cloud: Cloud) -> None:
    client = admin(cloud)
    node = client.post("/v1/nodes", json=ANY_NODE | {"name": "hv-spare", "uri": "qemu:///session"}).json()
    added = client.post(rules_url(node["id"]), json={"action": "block", "protocol": "tcp", "port": 25})
    assert added.status_code == 201
    assert client.delete(f"/v1/nodes/{node['id']}").status_code == 204
    assert client.get(rules_url(node["id"])).status_code == 404
    with cloud.runtime.db.session(write=False) as session:
        assert repository.firewall_rules(session, node["id"]) == []
