"""Bandwidth: a plan's network cap (an operator setting) reaches its servers' NICs (the fake node's), an IP record
shows its server's bits per second now and over a period, and each server's monthly transfer is counted from the
metrics sampler's readings, warned about once, then throttled until the month ends, then restored.

The schedules are off here: each test runs the sampler's and the quota's rounds itself (the same functions their
DBOS workflows run), and moves through months with kit.clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from cloudlet.catalog import service as catalog
from cloudlet.catalog.schemas import PlanUpdate
from cloudlet.events import service as events
from cloudlet.events.schemas import EventKind
from cloudlet.kit import clock
from cloudlet.mail import service as mail
from cloudlet.metrics.workflows import sample_all
from cloudlet.shield import bandwidth
from cloudlet.shield import workflows as shield_workflows
from cloudlet.shield.bandwidth_workflows import SCHEDULE_NAME, schedules
from tests.cloud import Cloud
from tests.helpers import make_user, mint_token
from tests.integration.test_instances import order, running

GB = 10**9


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"metrics_sample_schedule": "0 0 1 1 *", "transfer_quota_schedule": "0 0 1 1 *",
            "instance_reconcile_schedule": "0 0 1 1 *", "transfer_warn_percent": 80, "transfer_throttle_mbit": 10}


def plan_is(cloud: Cloud, **changes: Any) -> None:
    with cloud.runtime.db.session() as session:
        catalog.update_plan(session, cloud.plan_id, PlanUpdate(**changes))


def served(cloud: Cloud) -> tuple[httpx.Client, dict[str, Any], dict[str, Any]]:
    """A client, its running server, and that server's IP record."""
    client = cloud.client()
    server = running(client, client.post("/api/instances", json=order(cloud)).json()["id"])
    [record] = client.get("/api/shield/ips").json()
    return client, server, record


def guest_of(cloud: Cloud) -> str:
    [guest] = cloud.driver.list_guests()
    return guest.name


def traffic(cloud: Cloud, received: int, sent: int) -> None:
    """The guest moves bytes, and the sampler reads its counters (twice: a first reading gives no interval)."""
    sample_all(cloud.runtime.db, cloud.runtime.drivers)
    cloud.driver.add_traffic(guest_of(cloud), received, sent)
    sample_all(cloud.runtime.db, cloud.runtime.drivers)


def quota_round(cloud: Cloud) -> Any:
    return bandwidth.quota_round(cloud.runtime.db, cloud.runtime.drivers, cloud.runtime.settings)


def test_the_plan_cap_is_an_operator_setting_on_the_admin_api(cloud: Cloud) -> None:
    admin = cloud.api.as_(make_user(cloud.runtime, "root@example.com", admin=True).token)
    made = admin.post("/v1/admin/plans", json={"code": "capped-1", "name": "Capped", "vcpu": 1, "ram_mb": 512,
                                               "disk_gb": 10, "bandwidth_gb": 500, "bandwidth_mbit": 100,
                                               "monthly_price": "3.00"})
    assert made.status_code == 201, made.text
    assert (made.json()["bandwidth_mbit"], made.json()["bandwidth_gb"]) == (100, 500)
    url = f"/v1/admin/plans/{made.json()['id']}"
    assert admin.put(url, json={"bandwidth_mbit": 250}).json()["bandwidth_mbit"] == 250
    assert admin.put(url, json={"bandwidth_mbit": None}).json()["bandwidth_mbit"] is None  # null lifts the cap
    assert admin.put(url, json={"bandwidth_mbit": 0}).status_code == 400  # Shardlyn says 400 to bad input
    assert admin.put(url, json={"bandwidth_gb": None}).status_code == 400  # other fields stay not-null
    plan_is(cloud, bandwidth_mbit=40)
    categories = cloud.client().get("/api/catalog/plans").json()["categories"]
    shown = {p["plan"]: p["bandwidth_mbit"] for category in categories for p in category["packages"]}
    assert (shown["capped-1"], shown["scout-1"]) == (None, 40)


def test_a_server_is_built_with_its_plans_cap_and_follows_the_plan(cloud: Cloud) -> None:
    plan_is(cloud, bandwidth_mbit=50)
    served(cloud)
    assert cloud.driver.bandwidth(guest_of(cloud)) == 50
    plan_is(cloud, bandwidth_mbit=20)  # the operator changes the plan: the next round gives its servers the cap
    assert quota_round(cloud).capped == 1
    assert cloud.driver.bandwidth(guest_of(cloud)) == 20
    assert quota_round(cloud).capped == 0  # nothing to change now


def test_the_bandwidth_endpoint_shows_bits_per_second_caps_and_transfer(cloud: Cloud) -> None:
    plan_is(cloud, bandwidth_mbit=50, bandwidth_gb=1)
    client, server, record = served(cloud)
    assert record["bandwidth"] is None  # nothing sampled yet
    traffic(cloud, received=3_000_000, sent=1_000_000)
    [listed] = client.get("/api/shield/ips").json()
    assert listed["bandwidth"]["in_bps"] > listed["bandwidth"]["out_bps"] > 0
    reply = client.get(f"/api/shield/ips/{record['id']}/bandwidth", params={"period": "30m"})
    assert reply.status_code == 200, reply.text
    found = reply.json()
    assert (found["ip"], found["instance_id"], found["period"], found["resolution"]) == (
        server["main_ip"], server["id"], "30m", "raw")
    assert (found["cap_mbit"], found["effective_cap_mbit"]) == (50, 50)
    point = found["points"][-1]
    assert point["in_bps"] == listed["bandwidth"]["in_bps"] and point["timestamp"].endswith("Z")
    transfer = found["transfer"]
    assert (transfer["in_bytes"], transfer["out_bytes"], transfer["total_bytes"]) == (3_000_000, 1_000_000, 4_000_000)
    assert (transfer["quota_bytes"], transfer["state"], transfer["warn_percent"]) == (GB, "ok", 80)
    assert transfer["month"] == f"{clock.now():%Y-%m}" and transfer["used_percent"] == 0.4
    assert client.get(f"/api/shield/ips/{record['id']}/bandwidth", params={"period": "2d"}).status_code == 422
    long = client.get(f"/api/shield/ips/{record['id']}/bandwidth", params={"period": "24h"}).json()
    assert long["resolution"] == "5m" and long["points"]


def test_another_projects_record_is_404_and_analytics_read_is_needed(cloud: Cloud) -> None:
    _client, _server, record = served(cloud)
    url = f"/api/shield/ips/{record['id']}/bandwidth"
    stranger = cloud.client(make_user(cloud.runtime, "eve@example.com"))
    assert stranger.get(url).status_code == 404
    assert stranger.get("/api/shield/ips/999999/bandwidth").status_code == 404
    assert cloud.api.as_(mint_token(cloud.runtime, cloud.customer, "shield:read")).get(url).status_code == 403
    assert cloud.api.as_(mint_token(cloud.runtime, cloud.customer, "analytics:read")).get(url).status_code == 200


def test_the_month_warns_once_then_throttles_then_restores_at_the_next_month(cloud: Cloud) -> None:
    plan_is(cloud, bandwidth_mbit=50, bandwidth_gb=1)
    client, server, record = served(cloud)
    url = f"/api/shield/ips/{record['id']}/bandwidth"
    name = guest_of(cloud)
    now = clock.now()
    # the test runs in the middle of a month, so that its readings and rounds all fall in it
    middle = datetime(now.year, now.month, 15, 12, tzinfo=UTC) - now
    with clock.travel(middle):
        traffic(cloud, received=500_000_000, sent=100_000_000)  # 60 %
        assert quota_round(cloud).warned == 0
        traffic(cloud, received=200_000_000, sent=50_000_000)  # 85 %: warned, once
        assert quota_round(cloud).warned == 1
        assert quota_round(cloud).warned == 0
        assert client.get(url).json()["transfer"]["state"] == "warned"
        assert cloud.driver.bandwidth(name) == 50
        traffic(cloud, received=150_000_000, sent=0)  # 100 %: throttled until the month ends
        report = quota_round(cloud)
        assert (report.throttled, report.capped) == (1, 1)
        assert cloud.driver.bandwidth(name) == 10
        found = client.get(url).json()
        month_end = (datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC))
        assert found["transfer"]["state"] == "throttled"
        assert found["transfer"]["throttled_until"] == month_end.isoformat(timespec="milliseconds").replace(
            "+00:00", "Z")
        assert (found["cap_mbit"], found["effective_cap_mbit"]) == (50, 10)
        assert quota_round(cloud).throttled == 0  # once
        with cloud.runtime.db.session(write=False) as session:
            kinds = [e.kind for e in events.recent(session, project_id=cloud.customer.project_id)]
            mailed = [m.kind for m in mail.outbox(session)]
        assert kinds.count(EventKind.TRANSFER_WARNING) == 1 and kinds.count(EventKind.TRANSFER_THROTTLED) == 1
        assert EventKind.TRANSFER_WARNING in mailed and EventKind.TRANSFER_THROTTLED in mailed
        # a rebuild in the throttled month keeps the throttle (the spec carries it)
        with cloud.runtime.db.session(write=False) as session:
            from cloudlet.instances import service as instances
            spec = instances.guest_spec(session, cloud.runtime.settings, server_id(cloud, server["id"]))
        assert spec.bandwidth_mbit == 10
    with clock.travel(middle + timedelta(days=20)):  # the next month: the plan's cap is back, the count starts over
        report = quota_round(cloud)
        assert (report.restored, report.capped) == (1, 1)
        assert cloud.driver.bandwidth(name) == 50
        found = client.get(url).json()
        assert (found["transfer"]["state"], found["transfer"]["total_bytes"], found["effective_cap_mbit"]) == (
            "ok", 0, 50)
        assert quota_round(cloud).restored == 0


def server_id(cloud: Cloud, uuid: str) -> int:
    from cloudlet.instances import repository

    with cloud.runtime.db.session(write=False) as session:
        row = repository.instance(session, uuid)
        assert row is not None
        return row.id


def test_an_unlimited_plan_is_never_throttled_and_the_round_is_scheduled(cloud: Cloud) -> None:
    plan_is(cloud, bandwidth_gb=0)
    client, _server, record = served(cloud)
    traffic(cloud, received=5 * GB, sent=5 * GB)
    assert quota_round(cloud).throttled == 0
    transfer = client.get(f"/api/shield/ips/{record['id']}/bandwidth").json()["transfer"]
    assert (transfer["state"], transfer["quota_bytes"], transfer["used_percent"]) == ("unlimited", None, None)
    assert cloud.driver.bandwidth(guest_of(cloud)) is None
    assert [s.name for s in schedules(cloud.runtime.settings)] == [SCHEDULE_NAME]


def test_the_nodes_firewall_carries_each_servers_cap_for_what_it_sends(cloud: Cloud) -> None:
    # where a node cannot cap a NIC both ways, its firewall table polices what the guest sends (the libvirt driver
    # drops the figure where libvirt's <bandwidth> does it): the table is given every address's cap, and a new one
    # when the plan's changes (the reconciler's round, run here by hand)
    plan_is(cloud, bandwidth_mbit=40)
    _client, _server, record = served(cloud)

    def pushed() -> int | None:
        shield_workflows.apply_node(cloud.runtime.db, cloud.runtime.settings, cloud.runtime.drivers, cloud.node_id)
        return cloud.driver.firewalls[record["ip"]].out_mbit

    assert pushed() == 40
    plan_is(cloud, bandwidth_mbit=None)
    assert pushed() is None
