"""Tokens are not recoverable from the database: only their SHA-256 digest and visible prefix are kept."""

from __future__ import annotations

import json

from sqlalchemy import JSON, String, Text, select

import cloudlet.models  # noqa: F401  # registers every table on Base.metadata
from cloudlet.kit.db import Base
from cloudlet.kit.ids import digest
from cloudlet.surfaces.deps import Runtime
from tests.conftest import Api
from tests.helpers import make_user


def _stored_text(runtime: Runtime) -> list[str]:
    """Every value of every text or JSON column of every table."""
    values: list[str] = []
    with runtime.db.session(write=False) as session:
        for table in Base.metadata.sorted_tables:
            columns = [c for c in table.columns if isinstance(c.type, String | Text | JSON)]
            if not columns:
                continue
            for row in session.execute(select(*columns)):
                values += [v if isinstance(v, str) else json.dumps(v) for v in row if v is not None]
    return values


def test_a_minted_secret_appears_nowhere_but_its_digest_and_prefix_do(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    created = api.as_(jane.jwt).post("/api/me/api-tokens", json={"name": "deployer", "abilities": ["*"]})
    assert created.status_code == 201
    plaintext = created.json()["token"]
    secret = plaintext.partition("|")[2]
    # use it on every surface, so audit and usage logs have a chance to leak it
    assert api.as_(plaintext).get("/api/me/api-tokens").status_code == 200
    assert api.as_(secret).get("/api/v1/test").status_code == 200
    assert api.as_(secret, header="x-api-key").post("/v1/api-tokens", json={"name": "child"}).status_code == 201
    assert api.as_(plaintext).patch(f"/api/me/api-tokens/{created.json()['id']}", json={"name": "d"}).status_code == 200

    stored = _stored_text(runtime)
    assert stored, "the scan read nothing"
    assert not [v for v in stored if secret in v or secret[len("cl_"):] in v]
    assert digest(secret) in stored
    prefix = next(t["prefix"] for t in api.as_(jane.jwt).get("/api/me/api-tokens").json()
                  if t["id"] == created.json()["id"])
    assert secret.startswith(prefix) and prefix in stored
    assert len(secret) - len(prefix) >= 64  # 256 random bits (64 hex digits) stay unseen
