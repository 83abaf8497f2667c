"""Elxega's /v1/workloads: the caller's servers in Elxega's envelope (built by the real worker on a FakeDriver node).

Elxega has no create of its own for a single server, so the tests order one on the primary surface.
"""


from __future__ import annotations

from typing import Any

import httpx

from cloudlet.instances import repository
from tests.cloud import REGION, Cloud, wait_for
from tests.helpers import make_user, mint_token

WORKLOAD_FIELDS = {"id", "uuid", "name", "hostname", "status", "region", "plan", "ip", "ipv6", "resources",
                   "created_at"}


def order(cloud: Cloud, name: str = "api-1") -> dict[str, Any]:
    """Buy a server on the primary surface; its record there."""
    body = {"name": name, "hostname": f"{name}.example.com", "project_id": cloud.customer.project_id,
            "package_id": cloud.plan_id, "category": "standard", "os_template_id": cloud.template_id,
            "os_name": "Debian 12", "billing_cycle": "monthly", "ssh_key_ids": []}
    created = cloud.client().post("/api/instances", json=body)
    assert created.status_code == 201, created.text
    result: dict[str, Any] = created.json()
    return result


def numeric_id(cloud: Cloud, uuid: str) -> int:
    """The instance's row id, which Elxega's "w-<id>" shows."""
    with cloud.runtime.db.session(write=False) as session:
        row = repository.instance(session, uuid)
        assert row is not None
        return row.id


def workload(client: httpx.Client, ident: str) -> dict[str, Any]:
    """GET /v1/workloads/{ident}, checked to be a success envelope; the workload."""
    answer = client.get(f"/v1/workloads/{ident}")
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "success" and set(answer.json()["data"]) == {"workload"}
    result: dict[str, Any] = answer.json()["data"]["workload"]
    return result


def test_workloads_list_the_callers_servers_in_the_success_envelope(cloud: Cloud) -> None:
    client = cloud.client()
    first = order(cloud, "api-1")
    second = order(cloud, "api-2")
    wait_for(lambda: workload(client, first["id"])["status"] == "running")
    wait_for(lambda: workload(client, second["id"])["status"] == "running")

    listed = client.get("/v1/workloads")
    assert listed.status_code == 200
    document = listed.json()
    assert document["status"] == "success" and set(document["data"]) == {"workloads", "total"}
    assert document["data"]["total"] == 2
    newest, oldest = document["data"]["workloads"]
    assert set(newest) == WORKLOAD_FIELDS
    assert (newest["uuid"], oldest["uuid"]) == (second["id"], first["id"])
    assert newest["id"] == f"w-{numeric_id(cloud, second['id'])}"
    assert {k: newest[k] for k in ("name", "hostname", "status", "region", "plan", "ip", "ipv6", "resources")} == {
        "name": "api-2", "hostname": "api-2.example.com", "status": "running", "region": REGION, "plan": "scout-1",
        "ip": second["main_ip"], "ipv6": None, "resources": {"cpu": "1", "memory": "1Gi", "storage": "25Gi"}}
    assert newest["created_at"].endswith("Z") and len(newest["created_at"]) == len("2025-09-25T14:30:00Z")

    # the same server on the primary surface, and by each of the ids Elxega accepts
    primary = client.get(f"/api/instances/{newest['uuid']}").json()
    assert (primary["name"], primary["main_ip"], primary["status"]) == ("api-2", newest["ip"], "running")
    number = newest["id"].removeprefix("w-")
    assert workload(client, newest["id"]) == workload(client, number) == workload(client, newest["uuid"]) == newest

    running = client.get("/v1/workloads", params={"status": "running", "limit": 1, "offset": 1}).json()["data"]
    assert running["total"] == 2 and [w["uuid"] for w in running["workloads"]] == [first["id"]]
    assert client.get("/v1/workloads", params={"status": "stopped"}).json()["data"] == {"workloads": [], "total": 0}


def test_a_deleted_server_leaves_the_list(cloud: Cloud) -> None:
    client = cloud.client()
    body = order(cloud)
    wait_for(lambda: workload(client, body["id"])["status"] == "running")
    assert client.request("DELETE", f"/api/instances/{body['id']}", json={"mode": "immediate"}).status_code == 200
    during = client.get(f"/v1/workloads/{body['id']}")  # the worker may already have finished
    assert during.status_code == 404 or during.json()["data"]["workload"]["status"] == "deleting", during.text
    wait_for(lambda: client.get(f"/v1/workloads/{body['id']}").status_code == 404)
    assert client.get("/v1/workloads").json() == {"status": "success", "data": {"workloads": [], "total": 0}}


def test_bad_input_gets_400_in_the_error_envelope(cloud: Cloud) -> None:
    client = cloud.client()
    for query in ({"status": "sleeping"}, {"status": "deleted"}, {"limit": 0}, {"limit": "many"}, {"offset": -1}):
        answer = client.get("/v1/workloads", params=query)
        assert answer.status_code == 400, (query, answer.text)
        problem = answer.json()
        assert problem["status"] == "error" and problem["error"]["message"], (query, problem)
        assert problem["error"]["code"] == "VALIDATION_ERROR", (query, problem)


def test_another_users_workload_is_404(cloud: Cloud) -> None:
    client = cloud.client()
    body = order(cloud)
    mine = workload(client, body["id"])
    other = cloud.client(make_user(cloud.runtime, "other@example.com"))
    for ident in (mine["id"], mine["uuid"], mine["id"].removeprefix("w-")):
        answer = other.get(f"/v1/workloads/{ident}")
        assert answer.status_code == 404, (ident, answer.text)
        assert answer.json() == {"status": "error",
                                 "error": {"code": "VPS_NOT_FOUND", "message": "Instance not found."}}
    assert other.get("/v1/workloads").json() == {"status": "success", "data": {"workloads": [], "total": 0}}
    for nothing in ("w-0", "w-abc", "w-99999999999999999999", "2147483648"):
        assert client.get(f"/v1/workloads/{nothing}").status_code == 404, nothing


def test_instances_read_is_needed(cloud: Cloud) -> None:
    reader = cloud.api.as_(mint_token(cloud.runtime, cloud.customer, "instances:read"))
    assert reader.get("/v1/workloads").status_code == 200
    wallet_only = cloud.api.as_(mint_token(cloud.runtime, cloud.customer, "wallet:read"))
    refused = wallet_only.get("/v1/workloads")
    assert refused.status_code == 403 and refused.json()["status"] == "error"
    assert refused.json()["error"]["code"] == "INSUFFICIENT_SCOPE"
