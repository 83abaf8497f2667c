"""Instances on the primary surface, built by the real worker (DBOS) on a FakeDriver node."""

from __future__ import annotations

from typing import Any

import httpx

from cloudlet.instances.models import InstanceStatus
from tests.cloud import SSH_KEY, Cloud, wait_for

BODY = {"name": "web-1", "hostname": "web-1.example.com", "package_id": 0, "category": "standard",
        "os_template_id": 0, "os_name": "Debian 12", "billing_cycle": "monthly", "ssh_key_ids": []}


def order(cloud: Cloud, **changes: Any) -> dict[str, Any]:
    """A create body for the customer's personal project."""
    return {**BODY, "project_id": cloud.customer.project_id, "package_id": cloud.plan_id,
            "os_template_id": cloud.template_id, **changes}


def running(client: httpx.Client, instance_id: str) -> dict[str, Any]:
    """Wait until the instance runs; its detail."""
    def check() -> dict[str, Any] | None:
        found = client.get(f"/api/instances/{instance_id}").json()
        assert found["status"] in ("provisioning", "running"), found
        return found if found["status"] == "running" else None
    result: dict[str, Any] = wait_for(check)
    return result


def test_create_builds_a_guest_with_the_key_and_charges_the_wallet(cloud: Cloud) -> None:
    client = cloud.client()
    key = client.post("/api/ssh-keys", json={"name": "laptop", "public_key": SSH_KEY})
    assert key.status_code == 201, key.text
    before = cloud.balance()
    created = client.post("/api/instances", json=order(cloud, ssh_key_ids=[key.json()["id"]]))
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["status"] == "provisioning" and body["plan"] == "scout-1" and body["main_ip"].startswith("203.0.113.")
    assert body["locked"] is True and body["allowed_actions"] == []  # the build holds it
    assert body["action"] == {"id": body["action_id"], "command": "create", "progress": 0}
    assert body["vcpu"] == 1 and body["ram"] == 1 and body["storage"] == 25
    assert len(body["root_password"]) == 20 and body["charged_cents"] == 600
    assert cloud.balance() == before - 600
    detail = running(client, body["id"])
    assert detail["vf_state"] == "complete" and detail["vf_remote_state"]["state"] == "running"
    assert "shutdown" in detail["allowed_actions"] and "boot" not in detail["allowed_actions"]
    guests = {g.name: g for g in cloud.driver.list_guests()}
    assert len(guests) == 1
    (name,) = guests
    ready = cloud.driver.wait_ready(name, 1)
    assert ready.hostname == "web-1" and ready.address == body["main_ip"] and ready.authorized_keys == 1
    assert ready.root_password_set
    listed = client.get("/api/instances").json()
    assert [i["id"] for i in listed] == [body["id"]]


def test_immediate_deletion_removes_the_guest_frees_the_address_and_refunds(cloud: Cloud) -> None:
    client = cloud.client()
    body = client.post("/api/instances", json=order(cloud)).json()
    running(client, body["id"])
    before = cloud.balance()
    deleted = client.request("DELETE", f"/api/instances/{body['id']}", json={"mode": "immediate"})
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["refund_cents"] > 590 and deleted.json()["status"] == "deleting"
    assert cloud.balance() == before + deleted.json()["refund_cents"]
    wait_for(lambda: client.get(f"/api/instances/{body['id']}").status_code == 404)
    assert cloud.driver.list_guests() == []
    # the address can be handed out again
    again = client.post("/api/instances", json=order(cloud, hostname="web-2.example.com")).json()
    assert again["main_ip"] == body["main_ip"]


def test_end_of_cycle_deletion_can_be_cancelled(cloud: Cloud) -> None:
    client = cloud.client()
    body = client.post("/api/instances", json=order(cloud)).json()
    running(client, body["id"])
    scheduled = client.request("DELETE", f"/api/instances/{body['id']}", json={"mode": "end_of_cycle"}).json()
    assert scheduled["refund_cents"] == 0 and scheduled["delete_at"] is not None
    shown = client.get(f"/api/instances/{body['id']}").json()
    assert shown["deletion_scheduled_at"] == scheduled["delete_at"] and "cancel_deletion" in shown["allowed_actions"]
    cancelled = client.post(f"/api/instances/{body['id']}/cancel-deletion")
    assert cancelled.status_code == 200 and cancelled.json()["deletion_scheduled_at"] is None
    assert client.post(f"/api/instances/{body['id']}/cancel-deletion").status_code == 409


def test_an_empty_wallet_gets_402_and_nothing_is_made(cloud: Cloud) -> None:
    from tests.helpers import make_user

    poor = make_user(cloud.runtime, "poor@example.com")
    created = cloud.client(poor).post("/api/instances", json=order(cloud) | {"project_id": poor.project_id})
    assert created.status_code == 402, created.text
    assert cloud.client(poor).get("/api/instances").json() == []


def test_bad_orders_get_422(cloud: Cloud) -> None:
    client = cloud.client()
    cases = [order(cloud, package_id=99999), order(cloud, category="cpu-optimized"),
             order(cloud, os_template_id=99999), order(cloud, hostname="not a host!"),
             order(cloud, billing_cycle="weekly")]
    for case in cases:
        answer = client.post("/api/instances", json=case)
        assert answer.status_code == 422, (case, answer.text)
    assert client.get("/api/instances").json() == []
    assert client.post("/api/ssh-keys", json={"name": "x", "public_key": "ssh-ed25519 AAAAnotakey"}).status_code == 422


def test_a_failed_build_cleans_up_and_refunds_in_full(cloud: Cloud) -> None:
    client = cloud.client()
    cloud.driver.delete_image("tiny")  # the node lost its image: validation fails on the node
    before = cloud.balance()
    body = client.post("/api/instances", json=order(cloud)).json()
    failed = wait_for(lambda: (lambda d: d if d["status"] == "error" else None)(
        client.get(f"/api/instances/{body['id']}").json()))
    assert "image" in failed["status_reason"]
    assert cloud.balance() == before
    assert failed["main_ip"] is None and cloud.driver.list_guests() == []


def test_another_project_sees_404(cloud: Cloud) -> None:
    from tests.helpers import make_user

    body = cloud.client().post("/api/instances", json=order(cloud)).json()
    other = cloud.client(make_user(cloud.runtime, "other@example.com"))
    assert other.get(f"/api/instances/{body['id']}").status_code == 404
    assert other.request("DELETE", f"/api/instances/{body['id']}", json={"mode": "immediate"}).status_code == 404
    assert InstanceStatus(cloud.client().get(f"/api/instances/{body['id']}").json()["status"])


def test_an_end_of_cycle_deletion_happens_at_billed_till_without_a_refund(cloud: Cloud) -> None:
    from datetime import timedelta

    from cloudlet.instances import deletion, workflows
    from cloudlet.kit import clock

    client = cloud.client()
    body = client.post("/api/instances", json=order(cloud)).json()
    running(client, body["id"])
    client.request("DELETE", f"/api/instances/{body['id']}", json={"mode": "end_of_cycle"})
    before = cloud.balance()
    with cloud.runtime.db.session() as session:  # not due yet: nothing starts
        assert deletion.delete_due(session) == []
    with clock.travel(timedelta(days=32)):
        with cloud.runtime.db.session() as session:
            assert deletion.delete_due(session) == [body["id"]]
        workflows.start(workflows.due())  # what the worker's sweep does on its next tick
        wait_for(lambda: client.get(f"/api/instances/{body['id']}").status_code == 404)
    assert cloud.driver.list_guests() == [] and cloud.balance() == before


def test_an_idempotency_key_creates_one_server_and_replays_the_answer(cloud: Cloud) -> None:
    client = cloud.client()
    before = cloud.balance()
    first = client.post("/api/instances", json=order(cloud), headers={"Idempotency-Key": "order-1"})
    again = client.post("/api/instances", json=order(cloud), headers={"Idempotency-Key": "order-1"})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert cloud.balance() == before - 600 and len(client.get("/api/instances").json()) == 1
    other = client.post("/api/instances", json=order(cloud, name="other"), headers={"Idempotency-Key": "order-1"})
    assert other.status_code == 422
    from sqlalchemy import select

    from cloudlet.surfaces.idempotency import IdempotencyRecord

    with cloud.runtime.db.session(write=False) as session:  # the answer is kept, but not its password in clear
        (kept,) = session.scalars(select(IdempotencyRecord.response_body)).all()
    assert kept is not None and first.json()["root_password"] not in kept and first.json()["id"] not in kept


def test_ids_out_of_range_and_deleted_filters_find_nothing(cloud: Cloud) -> None:
    client = cloud.client()
    assert client.get("/api/instances/9999999999").status_code == 404
    assert client.get("/api/v1/vps/99999999999999").status_code == 404
    client.post("/api/instances", json=order(cloud))
    assert client.get("/api/v1/vps", params={"status": "deleted"}).status_code in (200, 400)
    from cloudlet.instances import service as instance_service
    from cloudlet.instances.models import InstanceStatus

    with cloud.runtime.db.session(write=False) as session:
        page = instance_service.list_instances(session, _acting(cloud), statuses=[InstanceStatus.DELETED])
    assert page.total == 0 and page.items == []


def _acting(cloud: Cloud) -> Any:
    from tests.helpers import _Acting

    return _Acting(cloud.customer.user)


def test_an_unpaid_renewal_suspends_the_server_and_reactivation_brings_it_back(cloud: Cloud) -> None:
    from datetime import timedelta

    from cloudlet.billing import jobs
    from cloudlet.instances import workflows
    from cloudlet.kit import clock

    client = cloud.client()
    body = client.post("/api/instances", json=order(cloud)).json()
    running(client, body["id"])
    left = cloud.balance()
    with cloud.runtime.db.session() as session:  # spend the rest of the wallet
        from cloudlet.billing import service as billing
        from cloudlet.billing.models import EntryKind

        wallet = billing.wallet_of(session, cloud.runtime.settings, cloud.customer.project_id)
        billing.debit(session, wallet.id, left, kind=EntryKind.ADMIN_DEBIT, key="spend-all")
    grace = timedelta(hours=cloud.runtime.settings.billing_grace_hours)
    with clock.travel(timedelta(days=32) + grace):
        report = jobs.run_renewals(cloud.runtime.db, cloud.runtime.settings)
        assert report.suspended == 1
        workflows.start(workflows.due())  # the worker's sweep: suspend what billing suspended
        wait_for(lambda: client.get(f"/api/instances/{body['id']}").json()["status"] == "suspended")
        shown = client.get(f"/api/instances/{body['id']}").json()
        assert shown["allowed_actions"] == ["reactivate", "delete"]
        assert cloud.driver.state(cloud.driver.list_guests()[0].name).value == "stopped"  # off, data kept
        refused = client.post(f"/api/instances/{body['id']}/reactivate")
        assert refused.status_code == 402, refused.text
        cloud.credit(cloud.customer, 1000)
        back = client.post(f"/api/instances/{body['id']}/reactivate")
        assert back.status_code == 200, back.text
        assert back.json()["status"] == "starting" and cloud.balance() == 400
        wait_for(lambda: client.get(f"/api/instances/{body['id']}").json()["status"] == "running")
        assert client.post(f"/api/instances/{body['id']}/reactivate").status_code == 409
