"""Shardlyn's /v1/instances: create, read, list, rename and delete, built by the real worker on a FakeDriver node."""


from __future__ import annotations

from typing import Any

import httpx

from cloudlet.billing import service as billing
from cloudlet.billing.schemas import CreditCreate
from tests.cloud import REGION, SSH_KEY, TEMPLATE, Cloud, wait_for
from tests.helpers import make_team, make_user, mint_token

ORDER = {"name": "game-node-1", "plan": "scout-1", "region": REGION, "template": TEMPLATE, "ssh_keys": [SSH_KEY],
         "billing_cycle": "monthly"}
INSTANCE_FIELDS = {"id", "name", "hostname", "status", "status_reason", "organization_id", "plan", "region",
                   "template", "os_name", "resources", "ipv4", "ipv6", "billing_cycle", "price_cents", "currency",
                   "billed_till", "locked", "action", "allowed_actions", "created_at", "updated_at"}


def credit(cloud: Cloud, project_id: int, cents: int) -> None:
    """Put money into a project's wallet."""
    with cloud.runtime.db.session() as session:
        billing.admin_credit(session, cloud.runtime.settings, project_id,
                             CreditCreate(amount_cents=cents, reason="test"), actor=cloud.customer.user)


def running(client: httpx.Client, instance_id: str) -> dict[str, Any]:
    """Wait until the instance runs; what GET answers then."""
    def check() -> dict[str, Any] | None:
        found = client.get(f"/v1/instances/{instance_id}")
        assert found.status_code == 200, found.text
        assert found.json()["status"] in ("provisioning", "running"), found.text
        return found.json() if found.json()["status"] == "running" else None
    result: dict[str, Any] = wait_for(check)
    return result


def test_an_instance_is_created_built_read_back_and_listed(cloud: Cloud) -> None:
    client = cloud.client()
    before = cloud.balance()
    created = client.post("/v1/instances", json=ORDER)
    assert created.status_code == 201, created.text
    body = created.json()
    assert set(body) == INSTANCE_FIELDS | {"charged_cents", "root_password"}
    assert body["status"] == "provisioning" and body["hostname"] == "game-node-1" and body["name"] == "game-node-1"
    assert body["organization_id"] == str(cloud.customer.project_id)
    assert (body["plan"], body["region"], body["template"]) == ("scout-1", REGION, TEMPLATE)
    assert body["resources"] == {"vcpu": 1, "memory_mib": 1024, "disk_gib": 25}
    assert body["ipv4"].startswith("203.0.113.") and body["ipv6"] is None
    assert body["charged_cents"] == 600 and body["price_cents"] == 600 and body["currency"] == "USD"
    assert len(body["root_password"]) == 20 and cloud.balance() == before - 600
    assert body["created_at"].endswith("Z") and len(body["created_at"]) == len("2026-01-31T00:00:00Z")
    assert body["locked"] is True and body["allowed_actions"] == []  # the build holds it, and says so
    assert body["action"]["command"] == "create" and body["action"]["progress"] == 0

    found = running(client, body["id"])
    assert set(found) == INSTANCE_FIELDS and found["locked"] is False and found["billed_till"].endswith("Z")
    assert found["action"] is None
    assert "delete" in found["allowed_actions"] and "boot" not in found["allowed_actions"]
    assert {k: found[k] for k in ("id", "name", "ipv4", "plan")} == {k: body[k] for k in ("id", "name", "ipv4", "plan")}
    primary = client.get(f"/api/instances/{body['id']}").json()
    assert (primary["id"], primary["name"], primary["main_ip"], primary["status"]) == (
        body["id"], "game-node-1", body["ipv4"], "running")
    (guest,) = cloud.driver.list_guests()
    assert cloud.driver.wait_ready(guest.name, 1).authorized_keys == 1

    listed = client.get("/v1/instances")
    assert listed.status_code == 200
    # the list renders the instance as its detail did; background rounds may touch its row in between, which
    # only moves updated_at on
    [item] = listed.json()["instances"]
    assert listed.json()["total"] == 1 and item["updated_at"] >= found["updated_at"]
    assert {**item, "updated_at": found["updated_at"]} == found
    assert client.get("/v1/instances", params={"status": "running"}).json()["total"] == 1
    assert client.get("/v1/instances", params={"status": "stopped"}).json() == {"instances": [], "total": 0}
    assert client.get("/v1/instances", params={"region": "elsewhere"}).json()["total"] == 0


def test_ids_as_strings_a_team_organization_and_a_chosen_password(cloud: Cloud) -> None:
    client = cloud.client()
    team = make_team(cloud.runtime, cloud.customer)
    credit(cloud, team, 1_000)
    order = ORDER | {"plan": str(cloud.plan_id), "template": str(cloud.template_id), "hostname": "db.example.com",
                     "organization_id": str(team), "root_password": "s3cret-enough", "region": None}
    created = client.post("/v1/instances", json=order)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["organization_id"] == str(team) and body["hostname"] == "db.example.com"
    assert body["plan"] == "scout-1" and body["template"] == TEMPLATE and body["region"] == REGION
    assert body["root_password"] is None
    assert client.get("/v1/instances", params={"organization_id": team}).json()["total"] == 1
    assert client.get("/v1/instances", params={"organization_id": cloud.customer.project_id}).json()["total"] == 0
    assert client.get("/v1/instances").json()["total"] == 1  # every organization of the caller's by default


def test_put_renames_and_the_primary_surface_sees_it(cloud: Cloud) -> None:
    client = cloud.client()
    body = client.post("/v1/instances", json=ORDER).json()
    renamed = client.put(f"/v1/instances/{body['id']}", json={"name": "  Minecraft EU  "})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "Minecraft EU" and renamed.json()["hostname"] == "game-node-1"
    assert client.get(f"/v1/instances/{body['id']}").json()["name"] == "Minecraft EU"
    assert client.get(f"/api/instances/{body['id']}").json()["name"] == "Minecraft EU"


def test_delete_removes_the_guest_and_refunds_the_unused_time(cloud: Cloud) -> None:
    client = cloud.client()
    body = client.post("/v1/instances", json=ORDER).json()
    running(client, body["id"])
    assert len(cloud.driver.list_guests()) == 1
    before = cloud.balance()
    deleted = client.delete(f"/v1/instances/{body['id']}")
    assert deleted.status_code == 200, deleted.text
    answer = deleted.json()
    assert answer["id"] == body["id"] and answer["status"] == "deleting" and answer["currency"] == "USD"
    assert 590 < answer["refund_cents"] <= 600
    assert cloud.balance() == before + answer["refund_cents"]
    ledger = client.get("/api/wallet/transactions").json()["data"]
    refunds = [e for e in ledger if e["kind"] == "refund" and e["reference"] == body["id"]]
    assert [e["amount_cents"] for e in refunds] == [answer["refund_cents"]]

    wait_for(lambda: client.get(f"/v1/instances/{body['id']}").status_code == 404)
    assert cloud.driver.list_guests() == []
    assert client.get("/v1/instances").json() == {"instances": [], "total": 0}
    again = client.delete(f"/v1/instances/{body['id']}")
    assert again.status_code == 404 and again.json() == {"error": "Instance not found."}
    assert cloud.balance() == before + answer["refund_cents"]


def test_a_retry_with_the_same_idempotency_key_creates_one_instance(cloud: Cloud) -> None:
    client = cloud.client()
    first = client.post("/v1/instances", json=ORDER, headers={"Idempotency-Key": "k-1"})
    again = client.post("/v1/instances", json=ORDER, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"] and again.headers["Idempotent-Replayed"] == "true"
    assert client.get("/v1/instances").json()["total"] == 1


def test_bad_input_gets_400_with_an_error_message_and_nothing_is_made(cloud: Cloud) -> None:
    client = cloud.client()
    before = cloud.balance()
    bad_orders: list[dict[str, Any]] = [
        {k: v for k, v in ORDER.items() if k != "name"},
        ORDER | {"plan": "no-such-plan"},
        ORDER | {"plan": "99999"},
        ORDER | {"region": "atlantis"},
        ORDER | {"template": "templeos-5"},
        ORDER | {"name": "not a host!"},
        ORDER | {"ssh_keys": ["ssh-ed25519 AAAAnotakey"]},
        ORDER | {"billing_cycle": "weekly"},
        ORDER | {"root_password": "short1"},
        ORDER | {"organization_id": "acme"},
    ]
    for order in bad_orders:
        answer = client.post("/v1/instances", json=order)
        assert answer.status_code == 400, (order, answer.text)
        assert set(answer.json()) == {"error"} and answer.json()["error"], (order, answer.text)
    for query in ({"status": "sleeping"}, {"status": "deleted"}, {"limit": 0}, {"organization_id": "acme"}):
        answer = client.get("/v1/instances", params=query)
        assert answer.status_code == 400 and set(answer.json()) == {"error"}, (query, answer.text)
    assert client.get("/v1/instances").json() == {"instances": [], "total": 0}
    assert cloud.balance() == before

    body = client.post("/v1/instances", json=ORDER).json()
    for rename in ({}, {"name": ""}, {"name": "   "}, {"name": "x" * 201}):
        answer = client.put(f"/v1/instances/{body['id']}", json=rename)
        assert answer.status_code == 400 and set(answer.json()) == {"error"}, (rename, answer.text)
    assert client.get(f"/v1/instances/{body['id']}").json()["name"] == "game-node-1"


def test_another_users_instance_is_404_and_untouched(cloud: Cloud) -> None:
    client = cloud.client()
    body = client.post("/v1/instances", json=ORDER).json()
    running(client, body["id"])
    stranger = make_user(cloud.runtime, "other@example.com")
    other = cloud.client(stranger)
    for answer in (other.get(f"/v1/instances/{body['id']}"),
                   other.put(f"/v1/instances/{body['id']}", json={"name": "mine now"}),
                   other.delete(f"/v1/instances/{body['id']}")):
        assert answer.status_code == 404 and answer.json() == {"error": "Instance not found."}, answer.text
    assert other.get("/v1/instances").json() == {"instances": [], "total": 0}
    # naming the owner's organization does not reach into it either
    listed = other.get("/v1/instances", params={"organization_id": cloud.customer.project_id})
    assert listed.status_code == 404
    order = ORDER | {"organization_id": cloud.customer.project_id}
    assert other.post("/v1/instances", json=order).status_code == 404
    found = client.get(f"/v1/instances/{body['id']}").json()
    assert found["name"] == "game-node-1" and found["status"] == "running"
    assert len(cloud.driver.list_guests()) == 1
    for nothing in ("00000000-0000-0000-0000-000000000000", "99999999999999999999", "2147483648"):
        assert client.get(f"/v1/instances/{nothing}").status_code == 404, nothing


def test_abilities_are_checked(cloud: Cloud) -> None:
    body = cloud.client().post("/v1/instances", json=ORDER).json()
    reader = cloud.api.as_(mint_token(cloud.runtime, cloud.customer, "instances:read"))
    assert reader.get(f"/v1/instances/{body['id']}").status_code == 200
    assert reader.get("/v1/instances").status_code == 200
    assert reader.post("/v1/instances", json=ORDER).status_code == 403
    assert reader.put(f"/v1/instances/{body['id']}", json={"name": "x"}).status_code == 403
    assert reader.delete(f"/v1/instances/{body['id']}").status_code == 403
    writer = cloud.api.as_(mint_token(cloud.runtime, cloud.customer, "instances:write"))
    assert writer.put(f"/v1/instances/{body['id']}", json={"name": "renamed"}).status_code == 200
