"""Shardlyn's API tokens at /v1/api-tokens: string ids, expires_in, the value shown once."""

from __future__ import annotations

from datetime import datetime, timedelta

from cloudlet.surfaces.deps import Runtime
from tests.conftest import Api
from tests.helpers import make_user, mint_token


def test_create_list_delete(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    created = api.as_(jane.jwt).post("/v1/api-tokens", json={"name": "github-actions", "expires_in": 2592000})
    assert created.status_code == 201, created.text
    body = created.json()
    assert set(body) == {"id", "name", "token", "expires_at", "created_at"}
    assert isinstance(body["id"], str) and body["name"] == "github-actions"
    lifetime = datetime.fromisoformat(body["expires_at"]) - datetime.fromisoformat(body["created_at"])
    assert abs(lifetime - timedelta(seconds=2592000)) <= timedelta(seconds=1)
    assert body["expires_at"].endswith("Z")

    assert api.as_(body["token"]).get("/v1/api-tokens").status_code == 200
    listed = api.as_(jane.jwt).get("/v1/api-tokens").json()
    row = next(t for t in listed if t["id"] == body["id"])
    assert "token" not in row and body["token"].startswith(row["prefix"])
    assert row["last_used_at"] is not None

    assert api.as_(jane.jwt).delete(f"/v1/api-tokens/{body['id']}").status_code == 204
    refused = api.as_(body["token"]).get("/v1/api-tokens")
    assert refused.status_code == 401 and refused.json() == {"error": "API key is invalid or malformed."}


def test_errors_are_shardlyn_shaped(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    john = make_user(runtime, "john@example.com")
    assert api.as_(jane.jwt).post("/v1/api-tokens", json={"expires_in": 60}).status_code == 400
    negative = api.as_(jane.jwt).post("/v1/api-tokens", json={"name": "x", "expires_in": -5})
    assert negative.status_code == 400 and set(negative.json()) == {"error"}
    for ident in ("abc", "99999999999999999999", john.token.split("|")[0]):
        missing = api.as_(jane.jwt).delete(f"/v1/api-tokens/{ident}")
        assert missing.status_code == 404 and missing.json() == {"error": "API key not found."}
    weak = mint_token(runtime, jane, "instances:read")
    assert api.as_(weak).get("/v1/api-tokens").status_code == 403
    assert api.get("/v1/api-tokens").json() == {"error": "No API key provided."}
