"""CyberPanel's VPS endpoints (/api/v1/vps), built by the real worker (DBOS) on a FakeDriver node.

Requests carry keys with CyberPanel's own scopes (vps:read, vps:write), as Bearer or X-API-Key.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from cloudlet.drivers.base import GuestReady
from cloudlet.drivers.fake import FakeDriver
from cloudlet.instances.schemas import CREATE_TASKS
from cloudlet.webhooks.service import signature_matches
from tests.cloud import REGION, SSH_KEY, Cloud, wait_for
from tests.helpers import Person, make_user, mint_token
from tests.integration.test_webhooks import Receiver

PASSWORD = "SecurePass123"
WEBHOOK_SECRET = "whsec-cyberpanel-0123"
LIST_KEYS = {"id", "vmid", "name", "status", "ip_address", "is_suspended", "created_at"}
IN_PROGRESS_KEYS = {"vps_id", "deployment_status", "vps_status", "current_task", "progress_percent", "tasks",
                    "tasks_completed", "tasks_total", "started_at", "is_ready"}


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Webhooks may reach the receiver on 127.0.0.1 (the default sweep, once a minute, is too slow to
    deliver them in time: they must start at once, when the deployment ends)."""
    return {"webhook_allow_private": True}


def cp(cloud: Cloud, person: Person | None = None, *scopes: str, header: str = "authorization") -> httpx.Client:
    """A client with a key that holds CyberPanel scopes (vps:read and vps:write unless named)."""
    token = mint_token(cloud.runtime, person or cloud.customer, *(scopes or ("vps:read", "vps:write")))
    return cloud.api.as_(token, header=header)


def order(cloud: Cloud, **changes: Any) -> dict[str, Any]:
    """The reference's example create body, on this cloud's plan, location and template."""
    return {"hostname": "my-server.example.com", "plan_id": cloud.plan_id, "location_code": REGION,
            "template_id": str(cloud.template_id), "root_password": PASSWORD, **changes}


def create(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    """Create a VPS; the answer's data."""
    answer = client.post("/api/v1/vps/create", json=body)
    assert answer.status_code == 201, answer.text
    data: dict[str, Any] = answer.json()["data"]
    return data


def deployment(client: httpx.Client, vps_id: int) -> dict[str, Any]:
    """The deployment answer, whole."""
    answer = client.get(f"/api/v1/vps/{vps_id}/deployment")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    assert body["success"] is True
    return body


def finished(client: httpx.Client, vps_id: int) -> dict[str, Any]:
    """Poll the deployment until it is no longer in progress; check every in-progress answer on the way."""
    def check() -> dict[str, Any] | None:
        body = deployment(client, vps_id)
        data = body["data"]
        if data["deployment_status"] == "in_progress":
            assert set(data) == IN_PROGRESS_KEYS and "message" not in body
            assert data["vps_status"] == "deploying" and data["is_ready"] is False and data["tasks_total"] == 10
            return None
        return body
    result: dict[str, Any] = wait_for(check)
    return result


def error_of(answer: httpx.Response, status: int = 400) -> str:
    """The CyberPanel error code of a refused request."""
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["success"] is False and body["error"] and body["message"]
    code: str = body["error_code"]
    return code


def seconds(text: str) -> datetime:
    """A timestamp as the reference prints them (seconds, Z)."""
    assert text.endswith("Z") and "." not in text, text
    return datetime.fromisoformat(text)


def test_create_deploy_list_detail_summary_and_delete(cloud: Cloud) -> None:
    client = cp(cloud)
    before = cloud.balance()
    answer = client.post("/api/v1/vps/create", json=order(cloud, ssh_key=SSH_KEY))
    assert answer.status_code == 201, answer.text
    assert answer.json()["message"] == "VPS deployment started. Use the deployment endpoint to check progress."
    created = answer.json()["data"]
    vps_id = created["vps_id"]
    assert isinstance(vps_id, int) and created["ip_address"].startswith("203.0.113.")
    assert created == {
        "vps_id": vps_id, "name": "my-server.example.com", "status": "deploying",
        "ip_address": created["ip_address"], "plan": {"id": cloud.plan_id, "name": "Scout 1", "price": "6.00"},
        "location": REGION, "template": str(cloud.template_id), "deployment_url": f"/api/v1/vps/{vps_id}/deployment",
        "estimated_time_seconds": 180, "webhook_configured": False,
    }
    assert cloud.balance() == before - 600

    done = finished(client, vps_id)
    assert done["message"] == "VPS deployment completed successfully"
    data = done["data"]
    assert data["deployment_status"] == "completed" and data["vps_status"] == "running"
    assert data["current_task"] is None and data["progress_percent"] == 100 and data["is_ready"] is True
    assert [(t["name"], t["order"], t["status"]) for t in data["tasks"]] == [
        (name, order_, "completed") for order_, name in enumerate(CREATE_TASKS, start=1)]
    assert data["tasks_completed"] == data["tasks_total"] == 10
    assert seconds(data["completed_at"]) >= seconds(data["started_at"])
    assert data["access_info"] == {"ip_address": created["ip_address"], "ssh_port": 22, "ssh_user": "root"}
    (guest,) = cloud.driver.list_guests()
    ready = cloud.driver.wait_ready(guest.name, 1)
    assert ready.hostname == "my-server" and ready.address == created["ip_address"]
    assert ready.authorized_keys == 1 and ready.root_password_set

    # a second, bigger server: the summary then adds up to the reference's 18.00
    plans = {p["name"]: p["id"] for p in client.get("/api/v1/vps/plans").json()["data"]["plans"]}
    second = create(client, order(cloud, hostname="db.example.com", plan_id=plans["Scout 2"],
                                  template_id="debian-12-tiny"))  # a template by its code
    assert second["template"] == str(cloud.template_id) and second["plan"]["price"] == "12.00"
    assert finished(client, second["vps_id"])["data"]["deployment_status"] == "completed"

    listed = client.get("/api/v1/vps").json()["data"]
    assert [i["id"] for i in listed["instances"]] == [second["vps_id"], vps_id]  # newest first
    assert listed["pagination"] == {"total": 2, "limit": 50, "offset": 0, "has_more": False}
    first_row = listed["instances"][1]
    assert set(first_row) == LIST_KEYS
    assert first_row | {"created_at": None} == {"id": vps_id, "vmid": 100 + vps_id, "name": "my-server.example.com",
                                                "status": "running", "ip_address": created["ip_address"],
                                                "is_suspended": False, "created_at": None}
    page = client.get("/api/v1/vps", params={"limit": 1}).json()["data"]
    assert [i["id"] for i in page["instances"]] == [second["vps_id"]]
    assert page["pagination"] == {"total": 2, "limit": 1, "offset": 0, "has_more": True}
    page = client.get("/api/v1/vps", params={"limit": 1, "offset": 1}).json()["data"]
    assert [i["id"] for i in page["instances"]] == [vps_id]
    assert page["pagination"] == {"total": 2, "limit": 1, "offset": 1, "has_more": False}
    for params, expected in [({"status": "running"}, 2), ({"status": "stopped"}, 0), ({"status": "suspended"}, 0),
                             ({"status": "deploying"}, 0), ({"location": REGION}, 2), ({"location": "la"}, 0),
                             ({"status": "running", "location": REGION}, 2)]:
        found = client.get("/api/v1/vps", params=params).json()["data"]
        assert len(found["instances"]) == found["pagination"]["total"] == expected, params
    assert error_of(client.get("/api/v1/vps", params={"status": "sleeping"})) == "VALIDATION_ERROR"
    assert error_of(client.get("/api/v1/vps", params={"limit": 101})) == "VALIDATION_ERROR"

    detail = client.get(f"/api/v1/vps/{vps_id}")
    assert detail.status_code == 200, detail.text
    shown = detail.json()["data"]
    assert shown["plan"] == {"id": cloud.plan_id, "name": "Scout 1", "cpu_cores": 1, "ram_mb": 1024, "disk_gb": 25,
                             "bandwidth_gb": 1000, "price": "6.00"}
    assert shown["location"] == {"code": REGION, "name": "Datacenter 1"}
    assert shown["server"] == {"hostname": "hv1"}
    assert shown["billing"]["hourly_rate"] == "0.0082"
    assert seconds(shown["billing"]["billing_start"]) >= seconds(shown["created_at"])
    assert seconds(shown["billing"]["last_billed"]) >= seconds(shown["billing"]["billing_start"])
    assert seconds(shown["updated_at"]) >= seconds(shown["created_at"])
    assert {k: shown[k] for k in LIST_KEYS} == first_row

    summary = client.get("/api/v1/vps/summary").json()["data"]
    assert summary == {"total_instances": 2, "running": 2, "stopped": 0, "suspended": 0,
                       "total_monthly_cost": "18.00", "locations": {REGION: 2}}

    before_delete = cloud.balance()
    deleted = client.post(f"/api/v1/vps/{vps_id}/delete")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"success": True,
                              "data": {"deleted": True, "vps_id": vps_id, "name": "my-server.example.com",
                                       "vmid": 100 + vps_id},
                              "message": 'VPS "my-server.example.com" deleted successfully'}
    refund = cloud.balance() - before_delete
    assert 590 < refund <= 600
    invoices = cloud.api.as_(cloud.customer.token).get("/api/v1/billing").json()["data"]["recent_invoices"]
    assert invoices[0]["type"] == "credit" and invoices[0]["amount"] == str(Decimal(refund).scaleb(-2))
    assert invoices[0]["description"].startswith("Refund of unused time")
    wait_for(lambda: client.get(f"/api/v1/vps/{vps_id}").status_code == 404)
    assert error_of(client.get(f"/api/v1/vps/{vps_id}"), 404) == "VPS_NOT_FOUND"
    assert guest.name not in {g.name for g in cloud.driver.list_guests()}
    assert len(cloud.driver.list_guests()) == 1
    assert [i["id"] for i in client.get("/api/v1/vps").json()["data"]["instances"]] == [second["vps_id"]]
    assert error_of(client.post(f"/api/v1/vps/{vps_id}/delete"), 404) == "VPS_NOT_FOUND"


class GatedDriver:
    """The cloud's FakeDriver, except that waiting for the guest agent waits for the test to open the gate."""

    def __init__(self, inner: FakeDriver) -> None:
        self.inner = inner
        self.gate = threading.Event()

    def wait_ready(self, name: str, timeout: float) -> GuestReady:
        """Hold the deployment at wait_for_guest_agent until the gate opens."""
        self.gate.wait(30)
        return self.inner.wait_ready(name, timeout)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def gated(cloud: Cloud) -> Iterator[GatedDriver]:
    """Node URIs lead to a gated driver for the test."""
    driver = GatedDriver(cloud.driver)
    previous = cloud.runtime.drivers.use(lambda uri: driver)
    try:
        yield driver
    finally:
        driver.gate.set()
        cloud.runtime.drivers.use(previous)


def test_a_deployment_in_progress_has_the_reference_shape(cloud: Cloud, gated: GatedDriver) -> None:
    client = cp(cloud, None, "vps:read", "vps:write", header="x-api-key")
    vps_id = create(client, order(cloud))["vps_id"]

    def held() -> dict[str, Any] | None:
        body = deployment(client, vps_id)
        agent = body["data"]["tasks"][7]  # current once configure_network is done, in progress a moment later
        return body if agent["status"] == "in_progress" else None
    body = wait_for(held)
    assert "message" not in body
    data = body["data"]
    assert set(data) == IN_PROGRESS_KEYS
    assert data["deployment_status"] == "in_progress" and data["vps_status"] == "deploying"
    assert data["current_task"] == "wait_for_guest_agent"
    assert data["progress_percent"] == 70 and data["is_ready"] is False
    assert data["tasks_completed"] == 7 and data["tasks_total"] == 10
    assert [(t["name"], t["order"], t["status"]) for t in data["tasks"]] == [
        (name, order_, "completed" if order_ <= 7 else "in_progress" if order_ == 8 else "pending")
        for order_, name in enumerate(CREATE_TASKS, start=1)]
    seconds(data["started_at"])
    # while it deploys, the other views say so too
    assert client.get(f"/api/v1/vps/{vps_id}").json()["data"]["status"] == "deploying"
    deploying = client.get("/api/v1/vps", params={"status": "deploying"}).json()["data"]
    assert [i["id"] for i in deploying["instances"]] == [vps_id]
    assert client.get("/api/v1/vps", params={"status": "provisioning"}).json()["data"]["pagination"]["total"] == 1
    assert client.get("/api/v1/vps", params={"status": "running"}).json()["data"]["pagination"]["total"] == 0
    summary = client.get("/api/v1/vps/summary").json()["data"]
    assert summary["total_instances"] == 1 and summary["running"] == 0 and summary["total_monthly_cost"] == "6.00"

    gated.gate.set()
    done = finished(client, vps_id)["data"]
    assert done["deployment_status"] == "completed" and done["progress_percent"] == 100


def test_password_rules_and_their_codes(cloud: Cloud) -> None:
    client = cp(cloud)
    before = cloud.balance()
    for password, code in [("short1", "PASSWORD_TOO_SHORT"), ("a1" * 37, "PASSWORD_TOO_LONG"),
                           ("onlyletters", "PASSWORD_WEAK"), ("1234567890", "PASSWORD_WEAK")]:
        answer = client.post("/api/v1/vps/create", json=order(cloud, root_password=password))
        assert error_of(answer) == code, password
    good = client.post("/api/v1/vps/create", json=order(cloud, root_password="abcdefg8"))  # 8 chars is enough
    assert good.status_code == 201, good.text
    assert cloud.balance() == before - 600
    assert client.get("/api/v1/vps").json()["data"]["pagination"]["total"] == 1


def test_missing_fields(cloud: Cloud) -> None:
    client = cp(cloud)
    answer = client.post("/api/v1/vps/create", json={k: v for k, v in order(cloud).items() if k != "root_password"})
    assert error_of(answer) == "MISSING_FIELDS"
    assert "root_password" in answer.json()["errors"]
    answer = client.post("/api/v1/vps/create", json=order(cloud, hostname="  ", location_code=""))
    assert error_of(answer) == "MISSING_FIELDS"
    assert set(answer.json()["errors"]) == {"hostname", "location_code"}
    answer = client.post("/api/v1/vps/create", json={})
    assert error_of(answer) == "MISSING_FIELDS"
    assert set(answer.json()["errors"]) == {"hostname", "plan_id", "location_code", "template_id", "root_password"}
    assert client.get("/api/v1/vps").json()["data"]["instances"] == []


def test_unknown_plan_location_template_and_bad_input(cloud: Cloud) -> None:
    client = cp(cloud)
    before = cloud.balance()
    cases = [
        (order(cloud, plan_id=99999), "PLAN_NOT_FOUND"),
        (order(cloud, location_code="la"), "LOCATION_NOT_FOUND"),
        (order(cloud, template_id="99999"), "INVALID_TEMPLATE"),
        (order(cloud, template_id="windows-2022"), "INVALID_TEMPLATE"),
        (order(cloud, hostname="not a host!"), "INVALID_HOSTNAME"),
        (order(cloud, ssh_key="ssh-ed25519 AAAAnotakey"), "INVALID_SSH_KEY"),
        (order(cloud, plan_id="scout-1"), "VALIDATION_ERROR"),
    ]
    for body, code in cases:
        assert error_of(client.post("/api/v1/vps/create", json=body)) == code, body
    assert client.get("/api/v1/vps").json()["data"]["pagination"]["total"] == 0
    assert cloud.balance() == before and cloud.driver.list_guests() == []


def test_an_unpayable_order_is_insufficient_balance(cloud: Cloud) -> None:
    poor = make_user(cloud.runtime, "poor@example.com")
    client = cp(cloud, poor)
    assert error_of(client.post("/api/v1/vps/create", json=order(cloud))) == "INSUFFICIENT_BALANCE"
    assert client.get("/api/v1/vps").json()["data"]["instances"] == []


def test_another_users_vps_is_not_found(cloud: Cloud) -> None:
    vps_id = create(cp(cloud), order(cloud))["vps_id"]
    other = cp(cloud, make_user(cloud.runtime, "other@example.com"))
    for path in (f"/api/v1/vps/{vps_id}", f"/api/v1/vps/{vps_id}/deployment"):
        assert error_of(other.get(path), 404) == "VPS_NOT_FOUND"
    assert error_of(other.post(f"/api/v1/vps/{vps_id}/delete"), 404) == "VPS_NOT_FOUND"
    assert error_of(other.get("/api/v1/vps/not-a-vps"), 404) == "VPS_NOT_FOUND"
    assert other.get("/api/v1/vps").json()["data"]["pagination"]["total"] == 0
    assert other.get("/api/v1/vps/summary").json()["data"]["total_instances"] == 0
    # still there for its owner
    assert cp(cloud).get(f"/api/v1/vps/{vps_id}").status_code == 200


def test_scopes(cloud: Cloud) -> None:
    reader = cp(cloud, None, "vps:read")
    assert error_of(reader.post("/api/v1/vps/create", json=order(cloud)), 403) == "INSUFFICIENT_SCOPE"
    vps_id = create(cp(cloud, None, "vps:write"), order(cloud))["vps_id"]
    assert reader.get(f"/api/v1/vps/{vps_id}").status_code == 200
    assert error_of(reader.post(f"/api/v1/vps/{vps_id}/delete"), 403) == "INSUFFICIENT_SCOPE"
    assert error_of(cp(cloud, None, "billing:read").get("/api/v1/vps"), 403) == "INSUFFICIENT_SCOPE"
    finished(reader, vps_id)
    deleter = cp(cloud, None, "vps:delete", header="x-api-key")
    assert error_of(deleter.post("/api/v1/vps/create", json=order(cloud)), 403) == "INSUFFICIENT_SCOPE"
    assert deleter.post(f"/api/v1/vps/{vps_id}/delete").json()["data"]["deleted"] is True


def test_an_idempotency_key_replays_the_first_answer(cloud: Cloud) -> None:
    client = cp(cloud)
    before = cloud.balance()
    headers = {"Idempotency-Key": "order-42"}
    first = client.post("/api/v1/vps/create", json=order(cloud), headers=headers)
    again = client.post("/api/v1/vps/create", json=order(cloud), headers=headers)
    assert first.status_code == again.status_code == 201, again.text
    assert again.json() == first.json() and again.headers.get("idempotent-replayed") == "true"
    assert cloud.balance() == before - 600
    assert client.get("/api/v1/vps").json()["data"]["pagination"]["total"] == 1
    other = client.post("/api/v1/vps/create", json=order(cloud, hostname="web.example.com"), headers=headers)
    assert error_of(other) == "IDEMPOTENCY_KEY_REUSED"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """An HTTP server on 127.0.0.1 recording the webhooks it gets."""
    made = Receiver()
    made.start()
    try:
        yield made
    finally:
        made.stop()


def test_a_signed_webhook_announces_the_completed_deployment(cloud: Cloud, receiver: Receiver) -> None:
    client = cp(cloud)
    created = create(client, order(cloud, webhook_url=receiver.url, webhook_secret=WEBHOOK_SECRET))
    assert created["webhook_configured"] is True
    finished(client, created["vps_id"])
    wait_for(lambda: receiver.requests)
    (got,) = receiver.requests
    assert signature_matches(WEBHOOK_SECRET, got.body, got.headers.get("x-webhook-signature"))
    assert not signature_matches("another-secret", got.body, got.headers.get("x-webhook-signature"))
    payload = json.loads(got.body)
    assert payload["event"] == got.headers["x-webhook-event"] == "vps.deployment.completed"
    assert payload["data"]["vps_id"] == created["vps_id"] and payload["data"]["status"] == "running"
    assert payload["data"]["name"] == "my-server.example.com"
    assert payload["data"]["ip_address"] == created["ip_address"]


def test_a_failed_deployment_names_the_task_and_the_error(cloud: Cloud, receiver: Receiver) -> None:
    client = cp(cloud)
    cloud.driver.delete_image("tiny")  # the node lost its image: the first task fails
    before = cloud.balance()
    created = create(client, order(cloud, webhook_url=receiver.url, webhook_secret=WEBHOOK_SECRET))
    body = finished(client, created["vps_id"])
    assert body["message"] == "VPS deployment failed"
    data = body["data"]
    assert data["deployment_status"] == "failed" and data["vps_status"] == "error" and data["is_ready"] is False
    assert data["failed_task"] == data["current_task"] == "validate_resources"
    assert data["tasks"][0]["status"] == "failed" and "image" in data["error"]
    assert "access_info" not in data and seconds(data["failed_at"]) >= seconds(data["started_at"])
    assert cloud.balance() == before  # refunded in full
    wait_for(lambda: receiver.requests)
    got = receiver.requests[0]
    assert json.loads(got.body)["event"] == "vps.deployment.failed"
    assert signature_matches(WEBHOOK_SECRET, got.body, got.headers.get("x-webhook-signature"))
