"""Alert rules and alerts on the Shardlyn surface, on both engines: rules written, read, changed and removed;
tenancy, scopes, node rules for administrators only, bad input; and the evaluation, driven by calling it at
chosen moments over samples written through the metrics service, as the sampler writes them: a condition held
less than its duration opens nothing, held for it opens one alert told once (in the app, by email, by an event),
a flapping condition within the cooldown tells nothing more, and a condition that stops resolves its alert."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from cloudlet.actions import service as engine
from cloudlet.actions.models import ActionStatus
from cloudlet.alerts import service as alerts
from cloudlet.alerts.schemas import EvaluationReport
from cloudlet.drivers.base import GuestStats
from cloudlet.events import service as events
from cloudlet.events.schemas import EventKind
from cloudlet.instances import repository as instance_rows
from cloudlet.kit import clock
from cloudlet.mail import service as mail
from cloudlet.metrics import service as metrics
from cloudlet.metrics.schemas import Reading
from cloudlet.nodes import service as nodes
from tests.cloud import Cloud
from tests.helpers import make_user, mint_token
from tests.integration.test_instances import order, running

GIB = 1024**3
VCPUS = 2
STEP = timedelta(seconds=60)  # the sampler's default round


@dataclass
class Server:
    """One of the customer's running servers."""

    uuid: str
    id: int


def server(cloud: Cloud) -> Server:
    """A running server of the customer's."""
    client = cloud.client()
    created = client.post("/api/instances", json=order(cloud))
    assert created.status_code == 201, created.text
    running(client, created.json()["id"])
    with cloud.runtime.db.session(write=False) as session:
        row = instance_rows.instance(session, created.json()["id"])
        assert row is not None
        return Server(uuid=row.uuid, id=row.id)


class Guest:
    """Plays the metrics sampler for one server: a reading each STEP, the guest as busy as told in between."""

    def __init__(self, cloud: Cloud, instance_id: int, start: datetime) -> None:
        self.cloud, self.instance_id, self.at = cloud, instance_id, start
        # below what the real sampler read before the worker stopped: the first reading starts the counters again,
        # so it gives no point (or an idle one over the day skipped), and no busy time before `start` is invented
        self.cpu_ns = 1
        self._record()

    def _record(self) -> None:
        stats = GuestStats(sampled_at=self.at, cpu_time_ns=self.cpu_ns, vcpus=VCPUS, memory_mib=2048,
                           memory_used_mib=1024, disk_read_bytes=0, disk_write_bytes=0, disk_read_requests=0,
                           disk_write_requests=0, disk_capacity_bytes=10 * GIB, disk_allocation_bytes=GIB,
                           net_rx_bytes=0, net_tx_bytes=0, net_rx_packets=0, net_tx_packets=0)
        with self.cloud.runtime.db.session() as session:
            metrics.record(session, [Reading(self.instance_id, stats, self.at)])

    def busy(self, percent: float, until: datetime) -> None:
        """Keep the guest's CPUs this busy until a moment, a reading each STEP."""
        while self.at + STEP <= until:
            self.at += STEP
            self.cpu_ns += int(percent / 100 * VCPUS * STEP.total_seconds() * 1e9)
            self._record()


def evaluate(cloud: Cloud, now: datetime) -> EvaluationReport:
    """One evaluation round at a chosen moment, as the scheduled workflow runs it."""
    with clock.travel(now - clock.now()), cloud.runtime.db.session() as session:
        return alerts.evaluate(session, now)


def alert_mail(cloud: Cloud) -> list[tuple[str, str]]:
    """(to, subject) of every alert email in the outbox, oldest first."""
    with cloud.runtime.db.session(write=False) as session:
        return [(m.to_address, m.subject) for m in reversed(mail.outbox(session, limit=500)) if m.kind == "alert"]


def recorded(cloud: Cloud, kind: EventKind, project_id: int) -> list[dict[str, Any]]:
    """The payloads of the project's events of a kind, oldest first."""
    with cloud.runtime.db.session(write=False) as session:
        return [e.payload for e in reversed(events.recent(session, project_id=project_id, kind=kind, limit=100))]


def rule_body(target_id: str, **changes: Any) -> dict[str, Any]:
    """The reference's body: CPU above 90 % for five minutes, told by email at most every half hour."""
    return {"name": "High CPU", "target_type": "instance", "target_id": target_id, "metric": "cpu_usage",
            "operator": "gt", "threshold": 90, "duration_seconds": 300, "severity": "warn", "notify_in_app": True,
            "notify_email": True, "cooldown_seconds": 1800, **changes}


def create(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    reply = client.post("/v1/alerts/rules", json=body)
    assert reply.status_code == 201, reply.text
    made: dict[str, Any] = reply.json()
    return made


def test_rules_are_written_read_changed_and_removed(cloud: Cloud) -> None:
    client = cloud.client()
    target = server(cloud)
    rule = create(client, rule_body(target.uuid))
    assert {k: rule[k] for k in rule_body(target.uuid)} == rule_body(target.uuid)
    assert rule["organization_id"] == str(cloud.customer.project_id) and rule["enabled"] is True
    assert rule["last_notified_at"] is None and rule["created_at"].endswith("Z")

    assert client.get(f"/v1/alerts/rules/{rule['id']}").json() == rule
    listed = client.get("/v1/alerts/rules").json()
    assert listed["total"] == 1 and listed["rules"] == [rule]

    changed = client.put(f"/v1/alerts/rules/{rule['id']}", json={"threshold": 80, "severity": "critical"})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["threshold"], changed.json()["severity"], changed.json()["name"]) == (80, "critical",
                                                                                               "High CPU")
    refused = client.put(f"/v1/alerts/rules/{rule['id']}", json={"metric": "node_down"})
    assert refused.status_code == 400 and "not sampled for instances" in refused.json()["error"]

    assert client.delete(f"/v1/alerts/rules/{rule['id']}").status_code == 204
    assert client.get(f"/v1/alerts/rules/{rule['id']}").status_code == 404
    assert client.get("/v1/alerts/rules").json() == {"rules": [], "total": 0}


@pytest.mark.parametrize(("changes", "says"), [
    ({"metric": "load_average"}, "metric"),
    ({"operator": "eq"}, "operator"),
    ({"duration_seconds": -1}, "duration_seconds"),
    ({"threshold": 150}, "between 0 and 100"),
    ({"metric": "memory_usage", "threshold": -5}, "between 0 and 100"),
    ({"metric": "network_in", "threshold": -1}, "0 or more"),
    ({"metric": "node_down"}, "node_down is not sampled for instances"),
    ({"duration_seconds": 7200}, "at most 3600"),
    ({"metric": "action_failures", "duration_seconds": 0}, "at least 1"),
    ({"target_type": "cluster"}, "target_type"),
    ({"severity": "fatal"}, "severity"),
    ({"name": "  "}, "blank"),
    ({"cooldown_seconds": -10}, "cooldown_seconds"),
])
def test_bad_rules_are_refused_with_the_reason(cloud: Cloud, changes: dict[str, Any], says: str) -> None:
    client = cloud.client()
    target = server(cloud)
    reply = client.post("/v1/alerts/rules", json=rule_body(target.uuid, **changes))
    assert reply.status_code == 400, reply.text
    assert says in reply.json()["error"]
    assert client.get("/v1/alerts/rules").json()["total"] == 0  # nothing written


def test_another_customers_rules_and_alerts_are_not_found(cloud: Cloud) -> None:
    client = cloud.client()
    target = server(cloud)
    rule = create(client, rule_body(target.uuid, duration_seconds=0))
    cloud.worker.stop(grace_seconds=0)
    start = metrics.bucket_start(clock.now()) + timedelta(days=1)
    Guest(cloud, target.id, start).busy(99, start + 2 * STEP)
    assert evaluate(cloud, start + 2 * STEP).opened == 1
    alert = client.get("/v1/alerts").json()["alerts"][0]

    other = cloud.api.as_(make_user(cloud.runtime, "other@example.com").token)
    for method, url in (("GET", f"/v1/alerts/rules/{rule['id']}"), ("PUT", f"/v1/alerts/rules/{rule['id']}"),
                        ("DELETE", f"/v1/alerts/rules/{rule['id']}"), ("GET", f"/v1/alerts/{alert['id']}"),
                        ("POST", f"/v1/alerts/{alert['id']}/ack")):
        reply = other.request(method, url, json={"threshold": 1} if method == "PUT" else None)
        assert reply.status_code == 404, f"{method} {url}: {reply.text}"
        assert set(reply.json()) == {"error"}
    assert other.get("/v1/alerts/rules").json() == {"rules": [], "total": 0}
    assert other.get("/v1/alerts").json() == {"alerts": [], "total": 0}
    assert other.get("/v1/alerts/unread-count").json() == {"count": 0}
    # a rule on someone else's server is refused as if the server did not exist
    assert other.post("/v1/alerts/rules", json=rule_body(target.uuid)).status_code == 404
    # naming the customer's organization is refused too
    assert other.get("/v1/alerts", params={"organization_id": cloud.customer.project_id}).status_code == 404
    # and nothing of the customer's changed
    assert client.get(f"/v1/alerts/rules/{rule['id']}").json()["threshold"] == 90
    assert client.get(f"/v1/alerts/{alert['id']}").json()["acknowledged"] is False


def test_scopes_guard_reading_and_writing(cloud: Cloud) -> None:
    target = server(cloud)
    rule = create(cloud.client(), rule_body(target.uuid))
    reader = cloud.api.as_(mint_token(cloud.runtime, cloud.customer, "alerts:read"))
    assert reader.get("/v1/alerts/rules").json()["total"] == 1
    assert reader.get("/v1/alerts/unread-count").status_code == 200
    assert reader.post("/v1/alerts/rules", json=rule_body(target.uuid)).status_code == 403
    assert reader.delete(f"/v1/alerts/rules/{rule['id']}").status_code == 403
    writer = cloud.api.as_(mint_token(cloud.runtime, cloud.customer, "alerts:write"))
    assert writer.post("/v1/alerts/rules", json=rule_body(target.uuid)).status_code == 201
    assert writer.get("/v1/alerts/rules").status_code == 403
    stranger = cloud.api.as_(mint_token(cloud.runtime, cloud.customer, "instances:read", "analytics:read"))
    assert stranger.get("/v1/alerts").status_code == 403


def test_node_rules_are_for_administrators(cloud: Cloud) -> None:
    body = rule_body(str(cloud.node_id), name="Node down", target_type="node", metric="node_down", operator="gte",
                     threshold=1, duration_seconds=60)
    refused = cloud.client().post("/v1/alerts/rules", json=body)
    assert refused.status_code == 403, refused.text
    admin = make_user(cloud.runtime, "admin@example.com", admin=True)
    boss = cloud.api.as_(admin.token)
    assert boss.post("/v1/alerts/rules", json={**body, "metric": "memory_usage"}).status_code == 400
    assert boss.post("/v1/alerts/rules", json={**body, "target_id": "999999"}).status_code == 404
    down = create(boss, body)
    busy = create(boss, {**body, "name": "Busy node", "metric": "cpu_usage", "operator": "gt", "threshold": 5,
                         "duration_seconds": 120})
    assert boss.get("/v1/alerts/rules").json()["total"] == 2
    assert cloud.client().get(f"/v1/alerts/rules/{down['id']}").status_code == 404  # another organization's
    # a token of the admin's without every ability is no administrator's
    scoped = cloud.api.as_(mint_token(cloud.runtime, admin, "alerts:read", "alerts:write"))
    assert scoped.get(f"/v1/alerts/rules/{down['id']}").status_code == 403
    assert scoped.get("/v1/alerts/rules").json()["total"] == 0

    target = server(cloud)  # the customer's guest keeps the node's CPUs busy
    cloud.worker.stop(grace_seconds=0)  # no heartbeat and no sampler: the test says what the node does
    with cloud.runtime.db.session(write=False) as session:
        node = nodes.get_node(session, cloud.node_id)
    assert node.last_heartbeat_at is not None
    assert evaluate(cloud, node.last_heartbeat_at + timedelta(seconds=30)).opened == 0
    with cloud.runtime.db.session() as session:
        nodes.mark_unreachable(session, cloud.node_id, "the test pulled its cable")
    assert evaluate(cloud, node.last_heartbeat_at + timedelta(seconds=45)).opened == 0  # down less than 60 s
    assert evaluate(cloud, node.last_heartbeat_at + timedelta(seconds=61)).opened == 1
    opened = boss.get("/v1/alerts").json()["alerts"]
    assert [(a["name"], a["target_type"], a["target_id"], a["target_name"], a["value"]) for a in opened] == [
        ("Node down", "node", str(cloud.node_id), "hv1", 1.0)]
    assert alert_mail(cloud) == [("admin@example.com", "[WARN] Node down: hv1")]  # the customer hears nothing

    start = metrics.bucket_start(clock.now()) + timedelta(days=1)
    guest = Guest(cloud, target.id, start)
    guest.busy(95, start + 2 * STEP)  # 95 % of 2 vCPUs on a node of 16: 11.875 %
    report = evaluate(cloud, start + 2 * STEP)
    assert (report.opened, report.resolved) == (1, 0)  # the node is still down: its alert stays open
    busy_alert = [a for a in boss.get("/v1/alerts", params={"status": "open"}).json()["alerts"]
                  if a["rule_id"] == busy["id"]]
    assert len(busy_alert) == 1 and busy_alert[0]["value"] == pytest.approx(11.88, abs=0.01)


def test_action_failures_are_counted_over_the_window(cloud: Cloud) -> None:
    client = cloud.client()
    target = server(cloud)
    rule = create(client, rule_body(target.uuid, name="Failing", metric="action_failures", operator="gte",
                                    threshold=2, duration_seconds=600, notify_email=False))
    cloud.worker.stop(grace_seconds=0)  # the failures below start no workflow
    for _ in range(2):
        with cloud.runtime.db.session() as session:
            row = instance_rows.instance(session, target.uuid, lock=True)
            assert row is not None
            action = engine.begin(session, row, "boot", ("boot_vm",))
            engine.finish(action, row, ActionStatus.ERROR, "the test broke it")
    now = clock.now()
    assert evaluate(cloud, now).opened == 1
    found = client.get("/v1/alerts").json()["alerts"]
    assert [(a["rule_id"], a["value"], a["status"]) for a in found] == [(rule["id"], 2.0, "open")]
    assert "2 failed action(s) in the last 600 s" in found[0]["message"]
    assert evaluate(cloud, now + timedelta(seconds=601)).resolved == 1  # out of the window
    assert alert_mail(cloud) == []  # notify_email is off


def test_an_alert_opens_once_held_for_its_duration_tells_once_and_resolves(cloud: Cloud) -> None:
    client = cloud.client()
    target = server(cloud)
    rule = create(client, rule_body(target.uuid))
    project = cloud.customer.project_id
    cloud.worker.stop(grace_seconds=0)  # the test plays the sampler and the schedule
    start = metrics.bucket_start(clock.now()) + timedelta(days=1)  # clear of what the real sampler wrote
    guest = Guest(cloud, target.id, start)

    guest.busy(95, start + 4 * STEP)  # above 90 % for four minutes: less than the rule's five
    assert evaluate(cloud, start + 4 * STEP).opened == 0
    assert client.get("/v1/alerts/unread-count").json() == {"count": 0}

    guest.busy(95, start + 5 * STEP)  # five minutes
    report = evaluate(cloud, start + 5 * STEP)
    assert (report.opened, report.notified, report.emails) == (1, 1, 1)
    listed = client.get("/v1/alerts").json()
    assert listed["total"] == 1
    alert = listed["alerts"][0]
    assert (alert["rule_id"], alert["status"], alert["severity"], alert["target_id"], alert["value"]) == (
        rule["id"], "open", "warn", target.uuid, 95.0)
    assert alert["message"] == "cpu_usage of instance web-1 is 95.0 % (> 90 for 300 s)"
    assert alert["notified"] is True and alert["acknowledged"] is False and alert["resolved_at"] is None
    assert alert_mail(cloud) == [("customer@example.com", "[WARN] High CPU: web-1")]
    opened = recorded(cloud, EventKind.ALERT_OPENED, project)
    assert [(e["alert_id"], e["rule_id"], e["metric"], e["value"], e["status"]) for e in opened] == [
        (alert["id"], rule["id"], "cpu_usage", 95.0, "open")]
    assert client.get(f"/v1/alerts/rules/{rule['id']}").json()["last_notified_at"] is not None

    # still holding, past the cooldown too: one alert, told once
    assert evaluate(cloud, start + 5 * STEP + timedelta(seconds=30)).opened == 0
    guest.busy(95, start + 40 * STEP)
    assert evaluate(cloud, start + 40 * STEP) == EvaluationReport(rules=1)
    assert client.get("/v1/alerts").json()["total"] == 1
    assert len(alert_mail(cloud)) == 1 and len(recorded(cloud, EventKind.ALERT_OPENED, project)) == 1

    # it stops: the alert resolves, and the integrations hear it
    guest.busy(10, start + 41 * STEP)
    assert evaluate(cloud, start + 41 * STEP).resolved == 1
    resolved = client.get(f"/v1/alerts/{alert['id']}").json()
    assert resolved["status"] == "resolved" and resolved["resolved_at"] is not None
    assert [e["status"] for e in recorded(cloud, EventKind.ALERT_RESOLVED, project)] == ["resolved"]

    # it comes back after the cooldown (half an hour since it was told): a new alert, told again
    guest.busy(95, start + 46 * STEP)
    assert evaluate(cloud, start + 46 * STEP).notified == 1
    second = client.get("/v1/alerts", params={"status": "open"}).json()["alerts"]
    assert len(second) == 1 and second[0]["id"] != alert["id"] and second[0]["notified"] is True
    assert len(alert_mail(cloud)) == 2
    guest.busy(10, start + 47 * STEP)
    assert evaluate(cloud, start + 47 * STEP).resolved == 1

    # and again within the cooldown: a new alert, in the app only
    guest.busy(95, start + 52 * STEP)
    report = evaluate(cloud, start + 52 * STEP)
    assert (report.opened, report.notified, report.emails) == (1, 0, 0)
    third = client.get("/v1/alerts", params={"status": "open"}).json()["alerts"]
    assert len(third) == 1 and third[0]["notified"] is False
    assert len(alert_mail(cloud)) == 2 and len(recorded(cloud, EventKind.ALERT_OPENED, project)) == 2
    assert len(recorded(cloud, EventKind.ALERT_RESOLVED, project)) == 2

    # unread until acknowledged; acknowledging twice changes nothing
    assert client.get("/v1/alerts/unread-count").json() == {"count": 3}
    acked = client.post(f"/v1/alerts/{alert['id']}/ack")
    assert acked.status_code == 200 and acked.json()["acknowledged"] is True
    assert client.post(f"/v1/alerts/{alert['id']}/ack").json()["acknowledged_at"] == acked.json()["acknowledged_at"]
    assert client.get("/v1/alerts/unread-count").json() == {"count": 2}
    unread = client.get("/v1/alerts", params={"acknowledged": "false"}).json()
    assert [a["id"] for a in unread["alerts"]] == [third[0]["id"], second[0]["id"]] and unread["total"] == 2

    # deleting the rule resolves its open alert (never told, so no event) and keeps every alert
    assert client.delete(f"/v1/alerts/rules/{rule['id']}").status_code == 204
    kept = client.get("/v1/alerts").json()["alerts"]
    assert [(a["status"], a["rule_id"]) for a in kept] == [("resolved", None)] * 3
    assert len(recorded(cloud, EventKind.ALERT_RESOLVED, project)) == 2
