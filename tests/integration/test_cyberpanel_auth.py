"""CyberPanel's authentication: error codes, either header, rate-limit headers, usage counting."""

from __future__ import annotations

from cloudlet.surfaces.deps import Runtime
from tests.conftest import Api
from tests.helpers import make_user, mint_token


def test_a_key_works_as_bearer_or_x_api_key_and_is_counted(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    first = api.as_(jane.token).get("/api/v1/test")
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["success"] is True
    assert body["data"]["user_email"] == "jane@example.com"
    assert body["data"]["scopes"] == ["all"]
    assert body["data"]["key_prefix"].startswith("cl_")
    assert first.headers["X-RateLimit-Limit"] == "10000"
    second = api.as_(jane.token, header="x-api-key").get("/api/v1/test")
    assert second.status_code == 200
    assert second.json()["data"]["request_count"] == 2
    assert int(second.headers["X-RateLimit-Remaining"]) == int(first.headers["X-RateLimit-Remaining"]) - 1


def test_auth_failures_carry_cyberpanel_codes(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    missing = api.get("/api/v1/test")
    assert missing.status_code == 401
    assert missing.json() == {"success": False, "error": "No API key provided", "error_code": "NO_API_KEY",
                              "message": "No API key provided."}
    ident = jane.token.partition("|")[0]
    bad = api.as_(f"{ident}|cl_{'0' * 64}").get("/api/v1/test")
    assert bad.status_code == 401 and bad.json()["error_code"] == "INVALID_API_KEY"
    fenced = mint_token(runtime, jane, "all", ip_allowlist=["198.51.100.0/24"])
    refused = api.as_(fenced).get("/api/v1/test")
    assert refused.status_code == 403 and refused.json()["error_code"] == "IP_NOT_ALLOWED"


def test_scopes_are_public(api: Api) -> None:
    scopes = {s["scope"] for s in api.get("/api/v1/scopes").json()["data"]["scopes"]}
    assert {"vps:read", "vps:write", "vps:delete", "billing:read", "all", "agent:read"} <= scopes
