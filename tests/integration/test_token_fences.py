"""Tokens never widen their own or another token's fences, and an account's tokens are bounded
(issue 9, findings 4.3 and 4.6).

Fences (IP allow-list, expiry, rate limits) are the signed-in user's to set; a token may rename or
switch off a token holding no more than it does, and delete only such a token.
"""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from cloudlet.kit.errors import Conflict
from cloudlet.surfaces.deps import Runtime
from cloudlet.tokens import service as tokens
from cloudlet.tokens.schemas import TokenCreate
from tests.conftest import Api
from tests.helpers import Person, make_user, mint_token
from tests.integration.test_worker import wait_for

FENCE_CHANGES = ({"ip_allowlist": ["0.0.0.0/0"]}, {"expires_at": None}, {"rate_limit_per_minute": 100_000},
                 {"rate_limit_per_hour": 10_000_000})


def _fenced_key(runtime: Runtime, email: str) -> tuple[Person, str, int]:
    """A user and a `*` token of theirs fenced by an expiry and rate limits (and an allow-list that
    TestClient's peer, "testclient", is no address of: the child-token test covers allow-lists)."""
    person = make_user(runtime, email)
    token = mint_token(runtime, person, "*", expires_in=3600, rate_limit_per_minute=5, rate_limit_per_hour=50)
    return person, token, int(token.split("|")[0])


@pytest.mark.parametrize("change", FENCE_CHANGES, ids=lambda c: next(iter(c)))
def test_a_token_cannot_lift_its_own_fences_on_the_primary_surface(api: Api, runtime: Runtime,
                                                                    change: dict[str, object]) -> None:
    _, token, token_id = _fenced_key(runtime, "jane@example.com")
    reply = api.as_(token).patch(f"/api/me/api-tokens/{token_id}", json=change)
    assert reply.status_code == 403, reply.text
    assert reply.json()["code"] == "SESSION_REQUIRED"
    assert next(iter(change)) in reply.json()["message"]
    row = next(t for t in api.as_(token).get("/api/me/api-tokens").json() if t["id"] == token_id)
    assert row["ip_allowlist"] == [] and row["expires_at"] is not None
    assert (row["rate_limit_per_minute"], row["rate_limit_per_hour"]) == (5, 50)


@pytest.mark.parametrize("change", [{"ip_whitelist": ["0.0.0.0/0"]}, {"expires_at": None},
                                    {"rate_limit_per_hour": 9_999}], ids=lambda c: next(iter(c)))
def test_a_key_cannot_lift_its_own_fences_on_cyberpanel(api: Api, runtime: Runtime, change: dict[str, object]) -> None:
    _, token, token_id = _fenced_key(runtime, "jane@example.com")
    reply = api.as_(token).patch(f"/api/v1/account/api-keys/{token_id}", json=change)
    assert reply.status_code == 403, reply.text
    assert reply.json()["success"] is False and reply.json()["error_code"] == "SESSION_REQUIRED"
    key = next(k for k in api.as_(token).get("/api/v1/account/api-keys").json()["data"]["api_keys"]
               if k["id"] == token_id)
    assert key["ip_whitelist"] == [] and key["expires_at"] is not None and key["rate_limit_per_hour"] == 50


def test_a_token_cannot_lift_a_child_tokens_fences(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    child = api.as_(jane.token).post("/api/me/api-tokens", json={"name": "ci", "ip_allowlist": ["192.0.2.0/24"]})
    assert child.status_code == 201, child.text
    reply = api.as_(jane.token).patch(f"/api/me/api-tokens/{child.json()['id']}", json={"ip_allowlist": []})
    assert reply.status_code == 403 and reply.json()["code"] == "SESSION_REQUIRED"


def test_a_signed_in_session_sets_fences_and_a_token_may_rename_and_switch_off(api: Api, runtime: Runtime) -> None:
    jane, token, token_id = _fenced_key(runtime, "jane@example.com")
    john = make_user(runtime, "john@example.com")  # another user's session finds no such token
    assert api.as_(john.jwt).patch(f"/api/me/api-tokens/{token_id}", json={"ip_allowlist": []}).status_code == 404
    # the owner's session changes every fence; a token only renames and switches off
    opened = api.as_(jane.jwt).patch(f"/api/me/api-tokens/{token_id}",
                                     json={"ip_allowlist": [], "expires_at": None, "rate_limit_per_minute": 600})
    assert opened.status_code == 200, opened.text
    assert (opened.json()["ip_allowlist"], opened.json()["expires_at"]) == ([], None)
    renamed = api.as_(token).patch(f"/api/me/api-tokens/{token_id}", json={"name": "renamed"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "renamed"
    off = api.as_(token).patch(f"/api/me/api-tokens/{token_id}", json={"is_active": False})
    assert off.status_code == 200 and off.json()["is_active"] is False
    back_on = api.as_(jane.jwt).patch(f"/api/me/api-tokens/{token_id}", json={"is_active": True})
    assert back_on.status_code == 200 and back_on.json()["is_active"] is True


def test_an_account_write_key_cannot_delete_or_change_a_stronger_key(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    weak = mint_token(runtime, jane, "account:read", "account:write")
    strong_id = int(jane.token.split("|")[0])
    deleted = api.as_(weak).delete(f"/api/v1/account/api-keys/{strong_id}")
    assert deleted.status_code == 403 and deleted.json()["error_code"] == "INSUFFICIENT_SCOPE"
    renamed = api.as_(weak).patch(f"/api/v1/account/api-keys/{strong_id}", json={"name": "x"})
    assert renamed.status_code == 403
    assert api.as_(jane.token).get("/api/me/api-tokens").status_code == 200  # the `*` key still works
    # a key it covers it may delete, and the owner's session may delete any
    peer = mint_token(runtime, jane, "account:read")
    assert api.as_(weak).delete(f"/api/v1/account/api-keys/{peer.split('|')[0]}").status_code == 200
    assert api.as_(jane.jwt).delete(f"/api/v1/account/api-keys/{strong_id}").status_code == 200


def test_a_child_token_cannot_have_higher_rate_limits_than_its_parent(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    parent = mint_token(runtime, jane, "*", rate_limit_per_minute=10, rate_limit_per_hour=100)
    refused = api.as_(parent).post("/api/me/api-tokens", json={"name": "c", "rate_limit_per_minute": 11})
    assert refused.status_code == 422 and "rate_limit_per_minute" in refused.json()["errors"]
    child = api.as_(parent).post("/api/me/api-tokens", json={"name": "c"})
    assert child.status_code == 201, child.text
    row = next(t for t in api.as_(parent).get("/api/me/api-tokens").json() if t["id"] == child.json()["id"])
    assert (row["rate_limit_per_minute"], row["rate_limit_per_hour"]) == (10, 100)


class TestTokensPerUser:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        return {"max_tokens_per_user": 3}

    def test_an_account_holds_a_bounded_number_of_tokens_on_every_surface(self, api: Api, runtime: Runtime) -> None:
        jane = make_user(runtime, "jane@example.com")  # holds one token already
        assert api.as_(jane.jwt).post("/api/me/api-tokens", json={"name": "2"}).status_code == 201
        assert api.as_(jane.jwt).post("/v1/api-tokens", json={"name": "3"}).status_code == 201
        primary = api.as_(jane.jwt).post("/api/me/api-tokens", json={"name": "4"})
        assert primary.status_code == 409 and primary.json()["code"] == "TOO_MANY_TOKENS"
        assert "at most 3" in primary.json()["message"]
        cyberpanel = api.as_(jane.jwt).post("/api/v1/account/api-keys", json={"name": "4", "scopes": ["all"]})
        assert cyberpanel.status_code == 409 and cyberpanel.json()["success"] is False
        shardlyn = api.as_(jane.jwt).post("/v1/api-tokens", json={"name": "4"})
        assert shardlyn.status_code == 409
        assert len(api.as_(jane.jwt).get("/api/me/api-tokens").json()) == 3
        # deleting one makes room again
        first = api.as_(jane.jwt).get("/api/me/api-tokens").json()[0]["id"]
        assert api.as_(jane.jwt).delete(f"/api/me/api-tokens/{first}").status_code == 204
        assert api.as_(jane.jwt).post("/api/me/api-tokens", json={"name": "again"}).status_code == 201

    @pytest.mark.engines("postgresql")  # SQLite's writers take turns from their first statement already
    def test_two_mints_at_once_cannot_both_take_the_last_place(self, runtime: Runtime) -> None:
        jane = make_user(runtime, "jane@example.com")  # holds one of three
        mint_token(runtime, jane, "*")

        def mint(session: Session, name: str) -> None:
            tokens.mint(session, user_id=jane.id, project_id=None,
                        data=TokenCreate(name=name), caller_abilities=["*"], default_per_minute=60,
                        default_per_hour=1000, max_tokens=3)

        second: list[BaseException | None] = []

        def racer() -> None:
            try:
                with runtime.db.session() as other:
                    mint(other, "second")
                second.append(None)
            except BaseException as error:  # handed to the test thread
                second.append(error)

        with runtime.db.session() as first:
            mint(first, "first")  # takes the last place, not committed yet
            thread = threading.Thread(target=racer)
            thread.start()

            def waiting() -> bool:  # the racer waits for the first mint's lock, as pg_locks shows
                with runtime.db.engine.connect() as probe:
                    return bool(probe.execute(text(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")).scalar())
            wait_for(waiting, "the second mint to wait on the first", seconds=30)
        thread.join(timeout=30)
        assert len(second) == 1 and isinstance(second[0], Conflict), second
        assert second[0].code == "TOO_MANY_TOKENS"
