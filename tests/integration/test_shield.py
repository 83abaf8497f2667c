"""Shield's per-address firewall on the primary surface: IP records of the caller's servers, rules and policy,
each change pushed to the server's node (the fake's) and shown `pending` until the node has it; bad input,
limits, tenancy and scopes; a node that refuses leaves the change in `error` with its reason."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from cloudlet.actions import repository as action_repository
from cloudlet.drivers.base import (
    AddressFirewall,
    FirewallAction,
    FirewallHits,
    FirewallProtocol,
    FirewallRuleSpec,
    GuestFailed,
    RateLimit,
    RateUnit,
)
from cloudlet.shield import workflows as shield_workflows
from tests.cloud import Cloud, WrappedDriver, wait_for
from tests.helpers import make_user, mint_token
from tests.integration.test_instances import order, running


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"shield_rules_per_ip": 3, "shield_reconcile_schedule": "* * * * * *"}


def served(cloud: Cloud) -> tuple[httpx.Client, dict[str, Any], str]:
    """A client, its running server's IP record, and that record's URL."""
    client = cloud.client()
    server = running(client, client.post("/api/instances", json=order(cloud)).json()["id"])
    [record] = client.get("/api/shield/ips").json()
    assert record["ip"] == server["main_ip"]
    return client, record, f"/api/shield/ips/{record['id']}"


def enforced(cloud: Cloud, client: httpx.Client, url: str) -> AddressFirewall:
    """Wait until the node enforces the record's latest change; what it enforces."""
    wait_for(lambda: client.get(url).json()["status"] == "active")
    ip = client.get(url).json()["ip"]
    return cloud.driver.firewalls[ip]


def test_a_rule_is_recorded_pending_and_enforced_by_the_node(cloud: Cloud) -> None:
    client, record, url = served(cloud)
    assert (record["version"], record["rules_count"], record["status"]) == (4, 0, "active")
    assert record["policy"] == {"default_in": "allow", "default_out": "allow"}
    assert record["instance_id"] and record["instance_name"] == "web-1"
    added = client.post(f"{url}/rules", json={"action": "allow", "protocol": "tcp", "src_cidr": "198.51.100.0/24",
                                              "dst_port": 22})
    assert added.status_code == 201, added.text
    rule = added.json()
    assert (rule["status"], rule["priority"], rule["dst_port"], rule["dst_port_end"]) == ("pending", 10, 22, None)
    assert rule["created_at"].endswith("Z") and len(rule["created_at"]) == len("2026-12-07T06:00:00.000Z")
    policy = client.put(f"{url}/policy", json={"default_in": "block"})
    assert policy.status_code == 200 and policy.json()["policy"] == {"default_in": "block", "default_out": "allow"}
    assert enforced(cloud, client, url) == AddressFirewall(record["ip"], FirewallAction.BLOCK, FirewallAction.ALLOW, (
        FirewallRuleSpec(FirewallAction.ALLOW, FirewallProtocol.TCP, "198.51.100.0/24", (22, 22)),))
    profile = client.get(url).json()
    assert [(r["id"], r["status"]) for r in profile["rules"]] == [(rule["id"], "active")]

    web = client.post(f"{url}/rules", json={"action": "allow", "protocol": "udp", "dst_port": 6000,
                                            "dst_port_end": 6010, "priority": 5}).json()
    changed = client.put(f"{url}/rules/{rule['id']}", json={"action": "block"})
    assert changed.status_code == 200 and changed.json()["action"] == "block"
    assert enforced(cloud, client, url).rules == (  # priority order: the lowest first
        FirewallRuleSpec(FirewallAction.ALLOW, FirewallProtocol.UDP, None, (6000, 6010)),
        FirewallRuleSpec(FirewallAction.BLOCK, FirewallProtocol.TCP, "198.51.100.0/24", (22, 22)))
    assert client.delete(f"{url}/rules/{web['id']}").status_code == 204
    assert [r.protocol for r in enforced(cloud, client, url).rules] == [FirewallProtocol.TCP]
    assert client.get("/api/shield/ips").json()[0]["rules_count"] == 1


@pytest.mark.parametrize(("body", "says"), [
    ({"action": "allow", "protocol": "tcp", "src_cidr": "198.51.100.5/24"}, "CIDR"),
    ({"action": "allow", "protocol": "tcp", "src_cidr": "not-a-network"}, "CIDR"),
    ({"action": "allow", "protocol": "tcp", "src_cidr": "2001:db8::/32"}, "IPv6"),
    ({"action": "allow", "protocol": "any", "dst_port": 22}, "tcp and udp only"),
    ({"action": "allow", "protocol": "icmp", "dst_port": 22}, "tcp and udp only"),
    ({"action": "allow", "protocol": "tcp", "dst_port": 90, "dst_port_end": 80}, "below dst_port"),
    ({"action": "allow", "protocol": "tcp", "dst_port_end": 80}, "needs dst_port"),
    ({"action": "allow", "protocol": "tcp", "dst_port": 0}, "dst_port"),
    ({"action": "allow", "protocol": "tcp", "dst_port": 70000}, "dst_port"),
    ({"action": "allow", "protocol": "sctp"}, "protocol"),
    ({"action": "deny", "protocol": "tcp"}, "action"),
    ({"protocol": "tcp"}, "action"),
])
def test_bad_rules_are_422_and_change_nothing(cloud: Cloud, body: dict[str, Any], says: str) -> None:
    client, record, url = served(cloud)
    refused = client.post(f"{url}/rules", json=body)
    assert refused.status_code == 422, refused.text
    assert says in refused.text
    assert client.get(url).json()["rules"] == []
    # the node holds, at most, the address's untouched firewall (the reconciler gives every address one)
    assert cloud.driver.firewalls in ({}, {record["ip"]: AddressFirewall(record["ip"])})


def test_duplicates_and_the_limit_per_address_are_409(cloud: Cloud) -> None:
    client, _record, url = served(cloud)
    rule = {"action": "allow", "protocol": "tcp", "dst_port": 443}
    assert client.post(f"{url}/rules", json=rule).status_code == 201
    again = client.post(f"{url}/rules", json=rule | {"src_cidr": "0.0.0.0/0"})  # the same rule, written out
    assert again.status_code == 409 and "already" in again.json()["message"]
    for port in (80, 8080):
        assert client.post(f"{url}/rules", json=rule | {"dst_port": port}).status_code == 201
    over = client.post(f"{url}/rules", json=rule | {"dst_port": 9090})
    assert over.status_code == 409 and "at most 3 rules" in over.json()["message"]
    assert client.get(url).json()["rules_count"] == 3


def test_another_projects_record_is_404_and_scopes_hold(cloud: Cloud) -> None:
    client, _record, url = served(cloud)
    rule = client.post(f"{url}/rules", json={"action": "allow", "protocol": "any"}).json()
    stranger = cloud.client(make_user(cloud.runtime, "eve@example.com"))
    assert stranger.get("/api/shield/ips").json() == []
    answers = [stranger.get(url), stranger.post(f"{url}/rules", json={"action": "block", "protocol": "any"}),
               stranger.put(f"{url}/rules/{rule['id']}", json={"action": "block"}),
               stranger.delete(f"{url}/rules/{rule['id']}"),
               stranger.put(f"{url}/policy", json={"default_in": "block"}),
               client.get("/api/shield/ips/999999"), client.put(f"{url}/rules/999999", json={"action": "block"})]
    assert [a.status_code for a in answers] == [404] * 7
    reader = cloud.api.as_(mint_token(cloud.runtime, cloud.customer, "shield:read"))
    assert reader.get(url).status_code == 200
    assert reader.post(f"{url}/rules", json={"action": "block", "protocol": "any"}).status_code == 403
    assert client.get(url).json()["rules"][0]["action"] == "allow"


def test_a_node_that_refuses_leaves_the_change_in_error_until_it_takes_it(
        cloud: Cloud, node_driver: Callable[[Any], None]) -> None:
    client, _record, url = served(cloud)

    def refuse(firewalls: Any) -> None:
        raise GuestFailed("nft refused the firewall: Error: Could not process rule")

    node_driver(WrappedDriver(cloud.driver, apply_firewalls=refuse))
    client.post(f"{url}/rules", json={"action": "block", "protocol": "tcp", "dst_port": 25})
    wait_for(lambda: client.get(url).json()["status"] == "error")
    profile = client.get(url).json()
    assert "nft refused" in profile["error"] and profile["rules"][0]["status"] == "error"
    assert profile["rules"][0]["hits"] is None and profile["policy_hits"] is None  # not the table it asked for
    node_driver(cloud.driver)
    client.put(f"{url}/policy", json={"default_out": "block"})  # the next change pushes the whole set again
    assert enforced(cloud, client, url).default_out is FirewallAction.BLOCK
    assert client.get(url).json()["rules"][0]["status"] == "active"


def test_each_change_is_pushed_by_an_action_on_its_node(cloud: Cloud, node_driver: Callable[[Any], None]) -> None:
    client, _record, url = served(cloud)
    ops = cloud.api.as_(make_user(cloud.runtime, "ops@example.com", admin=True).token)

    def pushes() -> list[dict[str, Any]]:
        listed = ops.get("/api/admin/actions", params={"running": "false", "limit": 1000}).json()
        return [action for action in listed if action["command"] == "firewall_push"]

    client.post(f"{url}/rules", json={"action": "block", "protocol": "tcp", "dst_port": 23})
    client.put(f"{url}/policy", json={"default_in": "block"})
    enforced(cloud, client, url)
    wait_for(lambda: [push["status"] for push in pushes()] == ["success", "success"])
    newest, oldest = pushes()
    assert newest["instance_id"] is None and newest["node_id"] is not None and oldest["node_id"] == newest["node_id"]
    with cloud.runtime.db.session(write=False) as session:
        tasks = [(t.name, t.status.value) for t in action_repository.tasks(session, newest["id"])]
        detail = action_repository.tasks(session, oldest["id"])[0].detail
    assert tasks == [("firewall_apply", "completed"), ("firewall_record", "completed")]
    assert detail.startswith("the node enforces 1 addresses' firewalls")

    def refuse(firewalls: Any) -> None:
        raise GuestFailed("nft refused the firewall: Error: Could not process rule")

    node_driver(WrappedDriver(cloud.driver, apply_firewalls=refuse))
    client.post(f"{url}/rules", json={"action": "block", "protocol": "udp", "dst_port": 53})
    wait_for(lambda: pushes()[0]["status"] == "error")
    assert "nft refused" in pushes()[0]["error"] and len(pushes()) == 3
    with cloud.runtime.db.session(write=False) as session:
        failed = [(t.name, t.status.value) for t in action_repository.tasks(session, pushes()[0]["id"])]
    assert failed == [("firewall_apply", "failed"), ("firewall_record", "pending")]


def test_the_firewall_goes_with_the_server(cloud: Cloud) -> None:
    client, record, url = served(cloud)
    client.post(f"{url}/rules", json={"action": "block", "protocol": "any"})
    enforced(cloud, client, url)
    deleted = client.request("DELETE", f"/api/instances/{record['instance_id']}", json={"mode": "immediate"})
    assert deleted.status_code in (200, 202), deleted.text
    wait_for(lambda: record["ip"] not in cloud.driver.firewalls, timeout=60)  # the reconciler's next round
    assert client.get(url).status_code == 404 and client.get("/api/shield/ips").json() == []


def test_a_table_changed_behind_cloudlets_back_is_written_again(cloud: Cloud) -> None:
    client, _record, url = served(cloud)
    client.post(f"{url}/rules", json={"action": "block", "protocol": "tcp", "dst_port": 23})
    wall = enforced(cloud, client, url)
    cloud.driver.firewalls = {}  # as if the node restarted, or someone flushed its table
    wait_for(lambda: cloud.driver.firewalls == {wall.address: wall})  # the reconciler's next round


def test_the_profile_shows_what_each_rule_and_the_policy_matched(cloud: Cloud) -> None:
    client, record, url = served(cloud)
    assert client.post(f"{url}/rules", json={"action": "allow", "protocol": "tcp", "dst_port": 22}).status_code == 201
    enforced(cloud, client, url)
    zero = client.get(url).json()
    assert zero["rules"][0]["hits"] == {"packets": 0, "bytes": 0} and zero["policy_hits"] == {"packets": 0, "bytes": 0}
    cloud.driver.hits[record["ip"]] = FirewallHits(((7, 420),), (3, 180))
    counted = client.get(url).json()
    assert counted["rules"][0]["hits"] == {"packets": 7, "bytes": 420}
    assert counted["policy_hits"] == {"packets": 3, "bytes": 180}


def test_an_allow_rule_may_limit_each_sources_rate(cloud: Cloud) -> None:
    client, _record, url = served(cloud)
    limited = client.post(f"{url}/rules", json={"action": "allow", "protocol": "tcp", "dst_port": 80,
                                                "rate_limit": 20})
    assert limited.status_code == 201, limited.text
    assert (limited.json()["rate_limit"], limited.json()["rate_unit"]) == (20, "connections")
    packets = client.post(f"{url}/rules", json={"action": "allow", "protocol": "udp", "dst_port": 53,
                                                "rate_limit": 500, "rate_unit": "packets"}).json()
    tcp, udp = FirewallProtocol.TCP, FirewallProtocol.UDP
    assert enforced(cloud, client, url).rules == (
        FirewallRuleSpec(FirewallAction.ALLOW, tcp, None, (80, 80), RateLimit(20, RateUnit.CONNECTIONS)),
        FirewallRuleSpec(FirewallAction.ALLOW, udp, None, (53, 53), RateLimit(500, RateUnit.PACKETS)))
    for body, says in (({"action": "block", "protocol": "tcp", "rate_limit": 5}, "Only an allow rule"),
                       ({"action": "allow", "protocol": "tcp", "rate_unit": "packets"}, "needs rate_limit"),
                       ({"action": "allow", "protocol": "tcp", "rate_limit": 0}, "rate_limit"),
                       ({"action": "allow", "protocol": "tcp", "rate_limit": 5, "rate_unit": "bytes"}, "rate_unit")):
        refused = client.post(f"{url}/rules", json=body)
        assert refused.status_code == 422 and says in refused.text, refused.text
    blocked = client.put(f"{url}/rules/{packets['id']}", json={"action": "block"})  # a limit it cannot keep
    assert blocked.status_code == 422 and "Only an allow rule" in blocked.text
    lifted = client.put(f"{url}/rules/{packets['id']}", json={"action": "block", "rate_limit": None})
    assert lifted.status_code == 200 and (lifted.json()["rate_limit"], lifted.json()["rate_unit"]) == (None, None)
    assert enforced(cloud, client, url).rules[1] == FirewallRuleSpec(FirewallAction.BLOCK, FirewallProtocol.UDP,
                                                                     None, (53, 53))


def test_a_node_that_refused_a_table_is_not_asked_for_it_again_each_round(
        cloud: Cloud, node_driver: Callable[[Any], None]) -> None:
    # a remote node (its agent does not exist yet) refuses every table: the round asks again after a minute, not
    # every tick, while a change is pushed at once
    client, _record, url = served(cloud)
    asked: list[object] = []

    def refuse(firewalls: Any) -> None:
        asked.append(firewalls)
        raise GuestFailed("firewalls of the remote node are applied by its node agent, which does not exist yet")

    node_driver(WrappedDriver(cloud.driver, apply_firewalls=refuse))
    client.post(f"{url}/rules", json={"action": "block", "protocol": "tcp", "dst_port": 25})
    wait_for(lambda: client.get(url).json()["status"] == "error")
    before = len(asked)
    for _ in range(3):  # the round, as its schedule runs it
        refused = shield_workflows.apply_node(cloud.runtime.db, cloud.runtime.settings, cloud.runtime.drivers,
                                              cloud.node_id, unless_same=True)
        assert refused is not None and "node agent" in refused
    assert len(asked) == before
    client.post(f"{url}/rules", json={"action": "block", "protocol": "tcp", "dst_port": 26})
    wait_for(lambda: len(asked) > before)  # a change is pushed at once
