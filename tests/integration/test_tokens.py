"""Primary tokens at /api/me/api-tokens: list, mint (shown once), revoke, and the PATCH extension."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from cloudlet.kit import clock
from cloudlet.kit.errors import Invalid
from cloudlet.surfaces.deps import Runtime
from cloudlet.tokens import service as tokens
from cloudlet.tokens.schemas import TokenCreate
from tests.conftest import Api
from tests.helpers import make_user, mint_token

MILLIS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def test_mint_list_use_and_revoke(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    created = api.as_(jane.jwt).post("/api/me/api-tokens",
                                     json={"name": "CI deployer", "abilities": ["instances:read", "instances:write"]})
    assert created.status_code == 201, created.text
    body = created.json()
    assert set(body) == {"id", "name", "abilities", "token", "created_at"}
    assert body["name"] == "CI deployer"
    assert body["abilities"] == ["instances:read", "instances:write"]
    assert body["token"].startswith(f"{body['id']}|cl_")
    assert MILLIS.match(body["created_at"])

    listed = api.as_(jane.token).get("/api/me/api-tokens")
    assert listed.status_code == 200
    row = next(t for t in listed.json() if t["id"] == body["id"])
    assert {"id", "name", "abilities", "last_used_at", "created_at"} <= set(row)
    assert "token" not in row and "secret_hash" not in row
    assert row["last_used_at"] is None and row["is_active"] is True
    assert body["token"].split("|")[1].startswith(row["prefix"])

    # the new token works (its abilities allow no token management, so 403, not 401)
    assert api.as_(body["token"]).get("/api/me/api-tokens").status_code == 403
    used = next(t for t in api.as_(jane.token).get("/api/me/api-tokens").json() if t["id"] == body["id"])
    assert MILLIS.match(used["last_used_at"])

    assert api.as_(jane.token).delete(f"/api/me/api-tokens/{body['id']}").status_code == 204
    gone = api.as_(body["token"]).get("/api/me/api-tokens")
    assert gone.status_code == 401
    assert gone.json()["code"] == "INVALID_API_KEY"
    assert body["id"] not in [t["id"] for t in api.as_(jane.token).get("/api/me/api-tokens").json()]


def test_abilities_default_to_full_access_and_accept_aliases(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    full = api.as_(jane.token).post("/api/me/api-tokens", json={"name": "all"}).json()
    assert full["abilities"] == ["*"]
    aliased = api.as_(jane.token).post("/api/me/api-tokens", json={"name": "x", "abilities": ["vps:read", "waf:*"]})
    assert aliased.json()["abilities"] == ["instances:read", "waf:*"]


def test_bad_input_is_a_422_that_names_the_field(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    unknown = api.as_(jane.token).post("/api/me/api-tokens", json={"name": "x", "abilities": ["rockets:launch"]})
    assert unknown.status_code == 422
    assert unknown.json()["errors"] == {"abilities": ["Unknown ability or scope: 'rockets:launch'."]}
    nameless = api.as_(jane.token).post("/api/me/api-tokens", json={"abilities": ["*"]})
    assert nameless.status_code == 422 and "name" in nameless.json()["errors"]
    past = api.as_(jane.token).post("/api/me/api-tokens", json={"name": "x", "expires_at": "2001-01-01T00:00:00Z"})
    assert past.status_code == 422 and "expires_at" in past.json()["errors"]
    bad_ip = api.as_(jane.jwt).patch(f"/api/me/api-tokens/{jane.token.split('|')[0]}",
                                      json={"ip_allowlist": ["not-an-ip"]})
    assert bad_ip.status_code == 422 and "ip_allowlist" in bad_ip.json()["errors"]


def test_a_token_cannot_mint_a_stronger_token(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    created = api.as_(jane.jwt).post("/api/me/api-tokens", json={"name": "x"}).json()
    weak = mint_token(runtime, jane, "instances:*", "account:write")
    # the primary endpoint needs `*`, so use CyberPanel's, which needs account:write
    refused = api.as_(weak).post("/api/v1/account/api-keys", json={"name": "y", "scopes": ["all"]})
    assert refused.status_code == 403 and refused.json()["error_code"] == "INSUFFICIENT_SCOPE"
    refused = api.as_(weak).post("/api/v1/account/api-keys", json={"name": "y", "scopes": ["billing:read"]})
    assert refused.status_code == 403
    allowed = api.as_(weak).post("/api/v1/account/api-keys", json={"name": "y", "scopes": ["vps:read", "vps:delete"]})
    assert allowed.status_code == 201, allowed.text
    # nor change one that holds more than it does
    stronger = api.as_(weak).patch(f"/api/v1/account/api-keys/{created['id']}", json={"ip_whitelist": []})
    assert stronger.status_code == 403


def test_a_token_minted_by_a_token_stays_inside_its_fences(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    fenced = mint_token(runtime, jane, "*", expires_in=3600)
    child = api.as_(fenced).post("/api/me/api-tokens", json={"name": "child"}).json()
    row = next(t for t in api.as_(jane.token).get("/api/me/api-tokens").json() if t["id"] == child["id"])
    parent = next(t for t in api.as_(jane.token).get("/api/me/api-tokens").json() if t["name"] == "scoped")
    assert row["expires_at"] == parent["expires_at"]
    longer = api.as_(fenced).post("/api/me/api-tokens", json={"name": "c", "expires_in": 7200})
    assert longer.status_code == 422 and "expires_at" in longer.json()["errors"]


def test_a_child_token_inherits_the_parents_allow_list_and_stays_within_it(runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    with runtime.db.session() as session:
        parent = tokens.mint(session, user_id=jane.id, project_id=None, default_per_minute=60, default_per_hour=600,
                             data=TokenCreate(name="p", ip_allowlist=["198.51.100.0/24"]), caller_abilities=["*"])
        child = tokens.mint(session, user_id=jane.id, project_id=None, default_per_minute=60, default_per_hour=600,
                            data=TokenCreate(name="c"), caller_abilities=["*"], parent=parent.token)
        assert child.token.ip_allowlist == ["198.51.100.0/24"]
        narrower = tokens.mint(session, user_id=jane.id, project_id=None, default_per_minute=60,
                               default_per_hour=600, caller_abilities=["*"], parent=parent.token,
                               data=TokenCreate(name="n", ip_allowlist=["198.51.100.7"]))
        assert narrower.token.ip_allowlist == ["198.51.100.7/32"]
        with pytest.raises(Invalid) as wider:
            tokens.mint(session, user_id=jane.id, project_id=None, default_per_minute=60, default_per_hour=600,
                        data=TokenCreate(name="w", ip_allowlist=["0.0.0.0/0"]), caller_abilities=["*"],
                        parent=parent.token)
        assert wider.value.field == "ip_allowlist"


def test_patch_deactivates_fences_and_limits(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    created = api.as_(jane.token).post("/api/me/api-tokens", json={"name": "bot"}).json()
    url = f"/api/me/api-tokens/{created['id']}"
    # fences are the signed-in user's to set (tests/integration/test_token_fences.py: never a token's)
    changed = api.as_(jane.jwt).patch(url, json={"is_active": False, "ip_allowlist": ["203.0.113.0/24"],
                                                   "rate_limit_per_minute": 5, "rate_limit_per_hour": 50})
    assert changed.status_code == 200, changed.text
    row = changed.json()
    assert (row["is_active"], row["ip_allowlist"]) == (False, ["203.0.113.0/24"])
    assert (row["rate_limit_per_minute"], row["rate_limit_per_hour"]) == (5, 50)
    inactive = api.as_(created["token"]).get("/api/me/api-tokens")
    assert inactive.status_code == 401 and inactive.json()["code"] == "INACTIVE_API_KEY"
    api.as_(jane.jwt).patch(url, json={"is_active": True})
    outside = api.as_(created["token"]).get("/api/me/api-tokens")
    assert outside.status_code == 403 and outside.json()["code"] == "IP_NOT_ALLOWED"
    api.as_(jane.jwt).patch(url, json={"ip_allowlist": []})
    ok = api.as_(created["token"]).get("/api/me/api-tokens")
    assert ok.status_code == 200 and ok.headers["X-RateLimit-Limit"] == "5"


def test_expired_tokens_answer_401_on_every_surface(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    token = mint_token(runtime, jane, "*", expires_in=60)
    assert api.as_(token).get("/api/me/api-tokens").status_code == 200
    with clock.travel(timedelta(minutes=2)):
        primary = api.as_(token).get("/api/me/api-tokens")
        assert primary.status_code == 401
        assert primary.json() == {"message": "API key has expired.", "code": "EXPIRED_API_KEY"}
        cyberpanel = api.as_(token).get("/api/v1/account/api-keys")
        assert cyberpanel.status_code == 401
        assert cyberpanel.json() == {"success": False, "error": "API key has expired",
                                     "error_code": "EXPIRED_API_KEY", "message": "API key has expired."}
        shardlyn = api.as_(token).get("/v1/api-tokens")
        assert shardlyn.status_code == 401 and shardlyn.json() == {"error": "API key has expired."}


def test_another_users_token_is_not_found(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    john = make_user(runtime, "john@example.com")
    johns = api.as_(john.token).post("/api/me/api-tokens", json={"name": "johns"}).json()
    assert api.as_(jane.token).delete(f"/api/me/api-tokens/{johns['id']}").status_code == 404
    assert api.as_(jane.token).patch(f"/api/me/api-tokens/{johns['id']}", json={"name": "x"}).status_code == 404
    assert api.as_(jane.token).delete("/api/me/api-tokens/99999999999999").status_code == 404
    assert api.as_(johns["token"]).get("/api/me/api-tokens").status_code == 200
    assert johns["id"] not in [t["id"] for t in api.as_(jane.token).get("/api/me/api-tokens").json()]
