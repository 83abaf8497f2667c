"""CyberPanel's API keys at /api/v1/account/api-keys: the reference's shapes, scopes and usage logs."""

from __future__ import annotations

import re

from cloudlet.surfaces.deps import Runtime
from tests.conftest import Api
from tests.helpers import make_user, mint_token

SECONDS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
KEY_FIELDS = {"id", "name", "key_prefix", "scopes", "is_active", "ip_whitelist", "expires_at", "last_used_at",
              "last_used_ip", "request_count", "rate_limit_per_minute", "rate_limit_per_hour", "created_at"}


def test_create_list_update_delete(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    created = api.as_(jane.token).post("/api/v1/account/api-keys", json={
        "name": "Production Key", "scopes": ["vps:read", "vps:write"], "ip_whitelist": ["203.0.113.50"],
        "expires_at": "2099-01-01T00:00:00", "rate_limit_per_minute": 30})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["success"] is True
    assert "shown again" in body["message"]
    data = body["data"]
    assert set(data) == KEY_FIELDS | {"api_key"}
    assert data["api_key"].startswith(data["key_prefix"]) and len(data["api_key"]) == 3 + 72
    assert data["scopes"] == ["vps:read", "vps:write"]
    assert data["ip_whitelist"] == ["203.0.113.50/32"]
    assert data["expires_at"] == "2099-01-01T00:00:00Z"  # no zone means UTC
    assert (data["rate_limit_per_minute"], data["rate_limit_per_hour"]) == (30, 1000)
    assert SECONDS.match(data["created_at"])

    listing = api.as_(jane.token).get("/api/v1/account/api-keys")
    assert listing.status_code == 200
    keys = listing.json()["data"]["api_keys"]
    assert listing.json()["data"]["total"] == len(keys) == 2
    assert all(set(k) == KEY_FIELDS for k in keys)
    assert next(k for k in keys if k["id"] == data["id"]) == {k: v for k, v in data.items() if k != "api_key"}

    patched = api.as_(jane.jwt).patch(f"/api/v1/account/api-keys/{data['id']}",
                                        json={"name": "Renamed", "ip_whitelist": [], "expires_at": None,
                                              "rate_limit_per_hour": 500})
    assert patched.status_code == 200, patched.text
    changed = patched.json()["data"]
    assert (changed["name"], changed["ip_whitelist"], changed["expires_at"]) == ("Renamed", [], None)
    assert (changed["rate_limit_per_minute"], changed["rate_limit_per_hour"]) == (30, 500)
    assert changed["scopes"] == ["vps:read", "vps:write"]

    assert api.as_(data["api_key"]).get("/api/v1/test").status_code == 200
    deleted = api.as_(jane.token).delete(f"/api/v1/account/api-keys/{data['id']}")
    assert deleted.status_code == 200 and deleted.json()["success"] is True
    assert api.as_(data["api_key"]).get("/api/v1/test").json()["error_code"] == "INVALID_API_KEY"
    assert api.as_(jane.token).get("/api/v1/account/api-keys").json()["data"]["total"] == 1


def test_scopes_are_checked_and_reported_in_cyberpanel_terms(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    reader = mint_token(runtime, jane, "account:read")
    listing = api.as_(reader).get("/api/v1/account/api-keys")
    assert listing.status_code == 200
    scopes = sorted(k["scopes"] for k in listing.json()["data"]["api_keys"])
    assert scopes == [["account:read"], ["all"]]
    refused = api.as_(reader).post("/api/v1/account/api-keys", json={"name": "x", "scopes": ["account:read"]})
    assert refused.status_code == 403
    assert refused.json()["error_code"] == "INSUFFICIENT_SCOPE"
    vps_only = mint_token(runtime, jane, "vps:read")
    assert api.as_(vps_only).get("/api/v1/account/api-keys").json()["error_code"] == "INSUFFICIENT_SCOPE"


def test_bad_input_is_a_400_in_the_envelope(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    missing = api.as_(jane.token).post("/api/v1/account/api-keys", json={"name": "x"})
    assert missing.status_code == 400 and missing.json()["error_code"] == "MISSING_FIELDS"
    unknown = api.as_(jane.token).post("/api/v1/account/api-keys", json={"name": "x", "scopes": ["vps:fly"]})
    assert unknown.status_code == 400
    assert unknown.json()["error_code"] == "INVALID_SCOPE" and unknown.json()["error"] == "Invalid scope"
    assert unknown.json()["message"] == "Unknown ability or scope: 'vps:fly'."
    bad_ip = api.as_(jane.token).post("/api/v1/account/api-keys",
                                      json={"name": "x", "scopes": ["all"], "ip_whitelist": ["300.1.1.1"]})
    assert bad_ip.status_code == 400 and list(bad_ip.json()["errors"]) == ["ip_whitelist"]
    assert "not an IP address or CIDR range: '300.1.1.1'" in bad_ip.json()["message"]
    key_id = jane.token.split("|")[0]
    for query in ("limit=0", "limit=101", "limit=abc", "offset=-1"):
        reply = api.as_(jane.token).get(f"/api/v1/account/api-keys/{key_id}/usage?{query}")
        assert reply.status_code == 400, query
        assert reply.json()["success"] is False and reply.json()["error_code"] == "VALIDATION_ERROR"


def test_another_users_key_is_key_not_found(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    john = make_user(runtime, "john@example.com")
    johns = john.token.split("|")[0]
    for method, path in (("GET", f"/api/v1/account/api-keys/{johns}/usage"),
                         ("PATCH", f"/api/v1/account/api-keys/{johns}"),
                         ("DELETE", f"/api/v1/account/api-keys/{johns}"),
                         ("DELETE", "/api/v1/account/api-keys/424242")):
        reply = api.as_(jane.token).request(method, path, json={"name": "x"} if method == "PATCH" else None)
        assert reply.status_code == 404, (method, path)
        assert reply.json() == {"success": False, "error": "API key not found", "error_code": "KEY_NOT_FOUND",
                                "message": "API key not found."}
    assert api.as_(john.token).get("/api/v1/test").status_code == 200


def test_usage_log_records_every_request_and_pages(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    created = api.as_(jane.token).post("/api/v1/account/api-keys", json={"name": "worker", "scopes": ["all"]})
    key = created.json()["data"]
    assert api.as_(key["api_key"]).get("/api/v1/test").status_code == 200
    assert api.as_(key["api_key"]).get("/api/v1/account/api-keys/999999/usage").status_code == 404
    assert api.as_(key["api_key"]).post("/api/v1/account/api-keys", json={}).status_code == 400
    usage = api.as_(jane.token).get(f"/api/v1/account/api-keys/{key['id']}/usage")
    assert usage.status_code == 200
    data = usage.json()["data"]
    assert (data["key_id"], data["key_name"]) == (key["id"], "worker")
    assert data["pagination"] == {"limit": 50, "offset": 0, "total": 3, "has_more": False}
    logs = data["usage_logs"]
    assert [(u["method"], u["endpoint"], u["response_status"]) for u in logs] == [
        ("POST", "/api/v1/account/api-keys", 400),
        ("GET", "/api/v1/account/api-keys/999999/usage", 404),
        ("GET", "/api/v1/test", 200),
    ]
    assert all(u["ip_address"] == "testclient" and u["response_time_ms"] >= 0 and SECONDS.match(u["created_at"])
               for u in logs)
    assert set(logs[0]) == {"endpoint", "method", "ip_address", "response_status", "response_time_ms", "created_at"}
    page = api.as_(jane.token).get(f"/api/v1/account/api-keys/{key['id']}/usage?limit=2&offset=1").json()["data"]
    assert page["pagination"] == {"limit": 2, "offset": 1, "total": 3, "has_more": False}
    assert [u["endpoint"] for u in page["usage_logs"]] == [logs[1]["endpoint"], logs[2]["endpoint"]]
    first = api.as_(jane.token).get(f"/api/v1/account/api-keys/{key['id']}/usage?limit=1").json()["data"]
    assert first["pagination"]["has_more"] is True
    listed = next(k for k in api.as_(jane.token).get("/api/v1/account/api-keys").json()["data"]["api_keys"]
                  if k["id"] == key["id"])
    assert listed["request_count"] == 3 and listed["last_used_ip"] == "testclient"
    assert SECONDS.match(listed["last_used_at"])


def test_a_deactivated_key_is_refused_on_every_surface_until_reactivated(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    key = api.as_(jane.token).post("/api/v1/account/api-keys", json={"name": "k", "scopes": ["all"]}).json()["data"]
    url = f"/api/v1/account/api-keys/{key['id']}"
    assert api.as_(jane.token).patch(url, json={"is_active": False}).json()["data"]["is_active"] is False
    cyberpanel = api.as_(key["api_key"]).get("/api/v1/test")
    assert cyberpanel.status_code == 401
    assert cyberpanel.json() == {"success": False, "error": "API key is inactive", "error_code": "INACTIVE_API_KEY",
                                 "message": "API key has been deactivated."}
    shardlyn = api.as_(key["api_key"]).get("/v1/api-tokens")
    assert shardlyn.status_code == 401 and shardlyn.json() == {"error": "API key has been deactivated."}
    primary = api.as_(key["api_key"]).get("/api/me/api-tokens")
    assert primary.status_code == 401 and primary.json()["code"] == "INACTIVE_API_KEY"
    # switching a key back on is the signed-in user's to do, never a token's
    assert api.as_(jane.token).patch(url, json={"is_active": True}).status_code == 403
    assert api.as_(jane.jwt).patch(url, json={"is_active": True}).status_code == 200
    assert api.as_(key["api_key"]).get("/api/v1/test").status_code == 200
