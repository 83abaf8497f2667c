"""Odd numbers in paths, queries, bodies and tokens (finding 4.5 of issue 9): each is a 4xx in the surface's
own error format, never a 500. Numbers past the 32-bit id columns and digits that are not ASCII ("²", "٣")
name nothing; a plan that instances use is a conflict to delete, not a foreign-key crash."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cloudlet.auth import service as auth
from cloudlet.kit.ids import MAX_ID, id_or_key, parse_id
from cloudlet.surfaces.deps import Runtime
from tests.cloud import Cloud
from tests.conftest import Api
from tests.helpers import Person, make_user, mint_token
from tests.integration.test_power import running_server

HUGE = "99999999999999999999"  # past a 64-bit integer: OverflowError in SQLite's driver
TWO_TO_65 = "36893488147419103231"
PAST_ID = str(MAX_ID + 1)  # fits SQLite's integers but not PostgreSQL's INTEGER id columns


@pytest.fixture
def admin(runtime: Runtime) -> Person:
    """An administrator."""
    return make_user(runtime, "admin@example.com", admin=True)


# --- the one parser ------------------------------------------------------------------------------


def test_the_id_parser_takes_ascii_digits_within_the_bound_only() -> None:
    assert parse_id("42") == 42 and parse_id(str(MAX_ID)) == MAX_ID
    for raw in ("0", PAST_ID, TWO_TO_65, "²", "٣", "-1", "1.0", " 1", "", "abc"):
        assert parse_id(raw) is None, raw
    assert id_or_key("7") == 7 and id_or_key(7) == 7
    assert id_or_key(TWO_TO_65) == 0 and id_or_key(MAX_ID + 1) == 0  # a number that names nothing
    assert id_or_key("٣") == "٣" and id_or_key("web-1") == "web-1"  # looked up as a key, not as the id 3


# --- paths ---------------------------------------------------------------------------------------


def test_a_path_id_past_the_bound_or_in_other_digits_is_404_on_the_primary_surface(api: Api, admin: Person) -> None:
    client = api.as_(admin.token)
    for raw in (TWO_TO_65, PAST_ID, "%C2%B2", "0"):
        for path in (f"/api/ssh-keys/{raw}", f"/api/me/api-tokens/{raw}"):
            reply = client.delete(path)
            assert reply.status_code == 404, (path, reply.text)
            assert set(reply.json()) >= {"message", "code"} and reply.json()["code"] == "NOT_FOUND"


def test_odd_instance_ids_are_404_on_every_surface(cloud: Cloud) -> None:
    server = running_server(cloud)  # the id 1 exists: an Arabic-Indic one (%D9%A1) must not find it
    assert cloud.client().get(f"/api/instances/{server['id']}").status_code == 200
    client = cloud.client()
    cp = cloud.api.as_(mint_token(cloud.runtime, cloud.customer, "vps:read", "vps:write"))
    wc = cloud.api.as_(cloud.customer.token, header="x-api-key")
    for raw in (TWO_TO_65, PAST_ID, "%C2%B2", "%D9%A1"):
        primary = client.get(f"/api/instances/{raw}")
        assert primary.status_code == 404 and "message" in primary.json(), primary.text
        cyberpanel = cp.get(f"/api/v1/vps/{raw}")
        assert cyberpanel.status_code == 404 and cyberpanel.json()["success"] is False, cyberpanel.text
        wayscloud = wc.get(f"/v1/vps/{raw}")
        assert wayscloud.status_code == 404 and "detail" in wayscloud.json(), wayscloud.text
        shardlyn = client.post(f"/v1/instances/{raw}/restart")
        assert shardlyn.status_code == 404 and "error" in shardlyn.json(), shardlyn.text
        elxega = client.get(f"/v1/workloads/w-{raw}")
        assert elxega.status_code == 404 and elxega.json()["status"] == "error", elxega.text


def test_odd_ids_in_admin_paths_are_404_in_shardlyn_format(api: Api, admin: Person) -> None:
    client = api.as_(admin.token)
    for raw in (TWO_TO_65, PAST_ID, "%C2%B2"):
        for method, path in (("DELETE", f"/v1/admin/plans/{raw}"), ("GET", f"/v1/nodes/{raw}"),
                             ("GET", f"/v1/users/{raw}"), ("DELETE", f"/v1/api-tokens/{raw}"),
                             ("GET", f"/v1/organizations/{raw}"), ("GET", f"/v1/admin/wallets/{raw}")):
            reply = client.request(method, path)
            assert reply.status_code == 404, (method, path, reply.text)
            assert set(reply.json()) == {"error"}


# --- queries -------------------------------------------------------------------------------------


def test_an_offset_past_the_bound_is_422_in_the_surface_format(runtime: Runtime, api: Api, admin: Person) -> None:
    key = api.as_(mint_token(runtime, admin, "vps:read", "vps:write"))
    cyberpanel = key.get("/api/v1/vps", params={"offset": HUGE})
    assert cyberpanel.status_code == 400  # CyberPanel answers bad input with a 400
    assert cyberpanel.json()["success"] is False and cyberpanel.json()["error_code"] == "VALIDATION_ERROR"
    assert "offset" in cyberpanel.json()["errors"]
    client = api.as_(admin.token)
    for path in ("/v1/instances", "/v1/users", "/v1/admin/audit-logs"):
        reply = client.get(path, params={"offset": HUGE})
        assert reply.status_code == 400 and set(reply.json()) == {"error"}, (path, reply.text)
    elxega = client.get("/v1/workloads", params={"offset": HUGE})
    assert elxega.status_code == 400 and elxega.json()["error"]["code"] == "VALIDATION_ERROR"
    wallet = client.get("/api/wallet/transactions", params={"offset": HUGE})
    assert wallet.status_code == 422 and "offset" in wallet.json()["errors"]
    assert client.get("/v1/users", params={"offset": str(MAX_ID)}).status_code == 200  # the bound itself is fine


def test_query_ids_past_the_bound_are_422(api: Api, admin: Person) -> None:
    client = api.as_(admin.token)
    for path, name in (("/api/instances", "project_id"), ("/api/wallet", "project_id"),
                       ("/v1/admin/audit-logs", "actor_user_id"), ("/v1/admin/audit-logs", "token_id"),
                       ("/v1/admin/project-prices", "project_id")):
        reply = client.get(path, params={name: PAST_ID})
        assert reply.status_code in (400, 422), (path, name, reply.text)
    organization = client.get("/v1/instances", params={"organization_id": "²"})
    assert organization.status_code == 400 and "organization_id" in organization.json()["error"]


# --- bodies --------------------------------------------------------------------------------------


def test_body_integers_past_their_column_are_refused_not_overflowed(api: Api, admin: Person) -> None:
    client = api.as_(admin.token)
    far = {"code": "far", "name": "Far", "country": "DE"}
    region = client.post("/v1/admin/regions", json={**far, "sort_order": 2**40})
    assert region.status_code == 400 and "sort_order" in region.json()["error"], region.text
    assert client.post("/v1/admin/regions", json={**far, "sort_order": 5}).status_code == 201
    order = client.post("/api/instances", json={
        "name": "a", "hostname": "a.example.com", "project_id": admin.project_id, "package_id": int(TWO_TO_65),
        "category": "standard", "os_template_id": 1, "os_name": "Debian", "billing_cycle": "monthly"})
    assert order.status_code == 422 and "package_id" in order.json()["errors"], order.text
    quote = client.post("/api/billing/quotes", json={"action": "create", "plan_id": int(PAST_ID)})
    assert quote.status_code in (404, 422), quote.text
    shardlyn = client.post("/v1/instances", json={"name": "a", "plan": 2**40, "template": 2**40})
    assert shardlyn.status_code in (400, 404) and set(shardlyn.json()) == {"error"}, shardlyn.text


def test_an_overcommit_ratio_that_would_store_as_zero_is_refused(cloud: Cloud) -> None:
    # found by the schemathesis run: 2.8e-142 passed "gt=0", was stored as 0.00 and broke a CHECK (a 500)
    admin = cloud.api.as_(make_user(cloud.runtime, "admin@example.com", admin=True).token)
    tiny = admin.put(f"/v1/nodes/{cloud.node_id}", json={"overcommit": {"cpu": 2.8e-142, "memory": 1, "disk": 1}})
    assert tiny.status_code == 400 and "overcommit" in tiny.json()["error"], tiny.text
    fine = admin.put(f"/v1/nodes/{cloud.node_id}", json={"overcommit": {"cpu": 0.01, "memory": 1, "disk": 1}})
    assert fine.status_code == 200, fine.text


# --- tokens --------------------------------------------------------------------------------------


def test_a_jwt_whose_subject_is_no_id_is_401(runtime: Runtime, api: Api) -> None:
    settings = runtime.settings
    for subject in (10**22, MAX_ID + 1):
        forged = auth.encode_jwt(settings, subject=subject, kind="access", lifetime=timedelta(minutes=5))
        reply = api.as_(forged).get("/api/me")
        assert reply.status_code == 401 and reply.json()["code"] == "INVALID_TOKEN", reply.text
        challenge = auth.encode_jwt(settings, subject=subject, kind="mfa_challenge", lifetime=timedelta(minutes=5))
        answer = api.post("/v1/auth/mfa/challenge", json={"challenge_token": challenge, "code": "123456"})
        assert answer.status_code == 401 and set(answer.json()) == {"error"}, answer.text


# --- conflicts -----------------------------------------------------------------------------------


def test_deleting_a_plan_in_use_is_409_and_keeps_it(cloud: Cloud) -> None:
    running_server(cloud)
    admin = cloud.api.as_(make_user(cloud.runtime, "admin@example.com", admin=True).token)
    reply = admin.delete(f"/v1/admin/plans/{cloud.plan_id}")
    assert reply.status_code == 409, reply.text
    assert "deactivate" in reply.json()["error"]
    assert admin.get("/v1/admin/plans").status_code == 200
    assert any(p["id"] == cloud.plan_id for p in admin.get("/v1/admin/plans").json()["plans"])
    unused = admin.post("/v1/admin/plans", json={"code": "spare", "name": "Spare", "category": "standard", "vcpu": 1,
                                                 "ram_mb": 512, "disk_gb": 10, "monthly_price_cents": 100})
    assert unused.status_code == 201, unused.text
    assert admin.delete(f"/v1/admin/plans/{unused.json()['id']}").status_code == 204
