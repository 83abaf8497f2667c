"""WaysCloud's /v1/vps: create, read and list VPS with an X-API-Key, built by the real worker on a FakeDriver node."""


from __future__ import annotations

from typing import Any

import httpx
from jsonschema import Draft202012Validator

from cloudlet.instances.models import InstanceStatus
from cloudlet.surfaces.wayscloud.vps_schemas import status_word
from tests.cloud import REGION, SSH_KEY, TEMPLATE, Cloud, wait_for
from tests.helpers import Person, make_user, mint_token

ORDER = {"hostname": "web01.example.com", "plan_code": "scout-1", "region": REGION, "os_template": TEMPLATE,
         "display_name": "Production Web Server", "ssh_keys": [SSH_KEY]}
WAYS_STATUSES = {"running", "stopped", "starting", "stopping", "provisioning"}


def ways(cloud: Cloud, person: Person | None = None, token: str | None = None) -> httpx.Client:
    """A client sending the person's token (or the given one) in WaysCloud's X-API-Key header."""
    return cloud.api.as_(token or (person or cloud.customer).token, header="x-api-key")


def running(client: httpx.Client, vps_id: str) -> dict[str, Any]:
    """Wait until the VPS runs; its full record."""
    def check() -> dict[str, Any] | None:
        found = client.get(f"/v1/vps/{vps_id}")
        assert found.status_code == 200, found.text
        assert found.json()["status"] in ("provisioning", "running"), found.text
        return found.json() if found.json()["status"] == "running" else None
    result: dict[str, Any] = wait_for(check)
    return result


def test_a_vps_created_with_the_reference_body_is_built_read_back_and_listed(cloud: Cloud) -> None:
    client = ways(cloud)
    before = cloud.balance()
    created = client.post("/v1/vps", json=ORDER)
    assert created.status_code == 200, created.text
    body = created.json()
    assert set(body) == {"id", "hostname", "status", "ipv4", "ipv6", "root_password"}
    assert body["hostname"] == "web01.example.com" and body["status"] == "provisioning"
    assert body["ipv4"].startswith("203.0.113.") and body["ipv6"] is None  # the default region has no v6 pool
    assert len(body["root_password"]) == 20  # none was sent, so one was generated and is shown this once
    assert cloud.balance() == before - 600

    detail = running(client, body["id"])
    assert detail == {"id": body["id"], "hostname": "web01.example.com", "display_name": "Production Web Server",
                      "status": "running", "plan_code": "scout-1", "region": REGION, "os_template": TEMPLATE,
                      "ipv4_address": body["ipv4"], "ipv6_address": None, "vcpus": 1, "memory_gb": 1, "disk_gb": 25,
                      "created_at": detail["created_at"]}
    assert detail["created_at"].endswith("Z") and len(detail["created_at"]) == len("2024-02-15T14:30:00Z")

    primary = cloud.client().get(f"/api/instances/{body['id']}").json()
    assert (primary["id"], primary["hostname"], primary["main_ip"], primary["name"], primary["status"]) == (
        body["id"], "web01.example.com", body["ipv4"], "Production Web Server", "running")
    (guest,) = cloud.driver.list_guests()
    ready = cloud.driver.wait_ready(guest.name, 1)
    assert ready.hostname == "web01" and ready.address == body["ipv4"] and ready.authorized_keys == 1

    listed = client.get("/v1/vps")
    assert listed.status_code == 200
    assert listed.json() == {"instances": [{"id": body["id"], "hostname": "web01.example.com",
                                            "display_name": "Production Web Server", "status": "running",
                                            "ipv4_address": body["ipv4"]}], "total": 1}


def test_display_name_defaults_to_the_hostname_and_a_chosen_password_is_not_echoed(cloud: Cloud) -> None:
    order = {k: v for k, v in ORDER.items() if k != "display_name"} | {"root_password": "s3cret-enough"}
    body = ways(cloud).post("/v1/vps", json=order).json()
    assert body["root_password"] is None
    assert ways(cloud).get(f"/v1/vps/{body['id']}").json()["display_name"] == "web01.example.com"


def test_a_retry_with_the_same_idempotency_key_gets_the_first_answer_and_pays_once(cloud: Cloud) -> None:
    client = ways(cloud)
    before = cloud.balance()
    first = client.post("/v1/vps", json=ORDER, headers={"Idempotency-Key": "order-1"})
    again = client.post("/v1/vps", json=ORDER, headers={"Idempotency-Key": "order-1"})
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert client.get("/v1/vps").json()["total"] == 1
    assert cloud.balance() == before - 600
    other = client.post("/v1/vps", json=ORDER | {"hostname": "web02.example.com"},
                        headers={"Idempotency-Key": "order-1"})
    assert other.status_code == 422 and other.json()["code"] == "IDEMPOTENCY_KEY_REUSED"


BAD_ORDERS: list[tuple[dict[str, Any], str, str]] = [
    ({"plan_code": None}, "plan_code", "MISSING_FIELDS"),
    ({"plan_code": "no-such-plan"}, "plan", "PLAN_NOT_FOUND"),
    ({"region": "atlantis"}, "region", "LOCATION_NOT_FOUND"),
    ({"os_template": "templeos-5"}, "os_template", "INVALID_TEMPLATE"),
    ({"hostname": "not a host!"}, "hostname", "INVALID_HOSTNAME"),
    ({"ssh_keys": ["ssh-ed25519 AAAAnotakey"]}, "ssh_keys", "INVALID_SSH_KEY"),
    ({"ssh_keys": "ssh-ed25519 AAAA"}, "ssh_keys", "VALIDATION_ERROR"),
    ({"root_password": "short1"}, "root_password", "PASSWORD_TOO_SHORT"),
]


def test_bad_orders_get_422_with_a_detail_and_nothing_is_made(cloud: Cloud) -> None:
    client = ways(cloud)
    before = cloud.balance()
    document = cloud.api.client.app.openapi()  # type: ignore[attr-defined]
    declared = Draft202012Validator({**document["paths"]["/v1/vps"]["post"]["responses"]["422"]["content"][
        "application/json"]["schema"], "components": document["components"]})
    for change, field, code in BAD_ORDERS:
        order = {k: v for k, v in (ORDER | change).items() if v is not None}
        answer = client.post("/v1/vps", json=order)
        assert answer.status_code == 422, (change, answer.text)
        problem = answer.json()
        declared.validate(problem)  # the 422 body is the one the OpenAPI document declares (HTTPValidationError)
        assert problem["detail"] and all(item["msg"] for item in problem["detail"]), change
        assert problem["code"] == code and field in problem["errors"], (change, problem)
    assert client.get("/v1/vps").json() == {"instances": [], "total": 0}
    assert cloud.balance() == before
    assert cloud.driver.list_guests() == []


def test_an_empty_wallet_gets_402(cloud: Cloud) -> None:
    poor = make_user(cloud.runtime, "poor@example.com")
    answer = ways(cloud, poor).post("/v1/vps", json=ORDER)
    assert answer.status_code == 402 and "detail" in answer.json()
    assert ways(cloud, poor).get("/v1/vps").json()["total"] == 0


def test_another_customers_vps_is_404_and_not_listed(cloud: Cloud) -> None:
    body = ways(cloud).post("/v1/vps", json=ORDER).json()
    other = ways(cloud, make_user(cloud.runtime, "other@example.com"))
    answer = other.get(f"/v1/vps/{body['id']}")
    assert answer.status_code == 404 and answer.json()["detail"] == "Instance not found."
    assert other.get("/v1/vps").json() == {"instances": [], "total": 0}
    assert ways(cloud).get(f"/v1/vps/{body['id']}").status_code == 200
    for nothing in ("00000000-0000-0000-0000-000000000000", "99999999999999999999", "2147483648"):
        assert ways(cloud).get(f"/v1/vps/{nothing}").status_code == 404, nothing


def test_a_read_only_key_lists_but_cannot_create(cloud: Cloud) -> None:
    reader = ways(cloud, token=mint_token(cloud.runtime, cloud.customer, "instances:read"))
    assert reader.get("/v1/vps").status_code == 200
    refused = reader.post("/v1/vps", json=ORDER)
    assert refused.status_code == 403 and "instances:write" in refused.json()["detail"]


def test_the_catalogue_paths_still_answer_beside_the_vps_id_route(cloud: Cloud) -> None:
    client = ways(cloud)
    assert any(p["plan_code"] == "scout-1" for p in client.get("/v1/vps/plans/").json())
    assert any(t["id"] == TEMPLATE for t in client.get("/v1/vps/os-templates").json())
    assert any(r["id"] == REGION for r in client.get("/v1/vps/regions").json())


def test_a_failed_build_reads_as_error(cloud: Cloud) -> None:
    cloud.driver.delete_image("tiny")  # the node lost its image: the build fails on the node
    client = ways(cloud)
    body = client.post("/v1/vps", json=ORDER).json()
    wait_for(lambda: client.get(f"/v1/vps/{body['id']}").json()["status"] == "error")
    assert client.get("/v1/vps").json()["instances"][0]["status"] == "error"


def test_every_status_renders_in_waysclouds_words_but_error_and_unknown() -> None:
    words = {status: status_word(status) for status in InstanceStatus}
    assert words[InstanceStatus.SUSPENDED] == "stopped" and words[InstanceStatus.DELETING] == "stopping"
    assert words[InstanceStatus.RESTARTING] == "starting" and words[InstanceStatus.STARTING] == "starting"
    outside = {InstanceStatus.ERROR, InstanceStatus.UNKNOWN}
    assert {w for s, w in words.items() if s not in outside} <= WAYS_STATUSES
    assert (words[InstanceStatus.ERROR], words[InstanceStatus.UNKNOWN]) == ("error", "unknown")
