"""Shardlyn sign-in: bootstrap, registration, login, refresh-token families, logout, limits, expiry."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from cloudlet.auth import service as auth
from cloudlet.auth.schemas import Registration
from cloudlet.kit import clock
from cloudlet.kit.errors import Conflict
from cloudlet.mail import service as mail
from cloudlet.surfaces.deps import Runtime
from tests.conftest import Api
from tests.helpers import PASSWORD, make_user


def login(api: Api, email: str, password: str = PASSWORD) -> dict[str, object]:
    reply = api.post("/v1/auth/login", json={"email": email, "password": password})
    assert reply.status_code == 200, reply.text
    body: dict[str, object] = reply.json()
    return body


# --- bootstrap ---------------------------------------------------------------------------------


def test_bootstrap_creates_the_first_admin_once(api: Api) -> None:
    assert api.get("/v1/auth/bootstrap/status").json() == {"needs_bootstrap": True}
    reply = api.post("/v1/auth/bootstrap", json={"email": "Root@Example.com", "password": PASSWORD, "name": "Root"})
    assert reply.status_code == 201, reply.text
    body = reply.json()
    assert set(body) == {"access_token", "refresh_token", "expires_in", "token_type"}
    assert body["expires_in"] == 900 and body["token_type"] == "Bearer"
    me = api.as_(body["access_token"]).get("/v1/users/me").json()
    assert me["email"] == "root@example.com" and me["is_admin"] is True and me["name"] == "Root"

    assert api.get("/v1/auth/bootstrap/status").json() == {"needs_bootstrap": False}
    again = api.post("/v1/auth/bootstrap", json={"email": "other@example.com", "password": PASSWORD, "name": "X"})
    assert again.status_code == 409
    assert "already" in again.json()["error"]


def test_bootstrap_is_refused_once_any_account_exists(api: Api, runtime: Runtime) -> None:
    make_user(runtime, "jane@example.com")
    assert api.get("/v1/auth/bootstrap/status").json() == {"needs_bootstrap": False}
    reply = api.post("/v1/auth/bootstrap", json={"email": "root@example.com", "password": PASSWORD, "name": "R"})
    assert reply.status_code == 409


def test_two_concurrent_bootstraps_make_one_admin(runtime: Runtime) -> None:
    outcome: list[BaseException | None] = []

    def second() -> None:
        try:
            with runtime.db.session() as session:
                auth.bootstrap(session, runtime.settings, Registration(email="b@example.com", password=PASSWORD))
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    with runtime.db.session() as session:
        auth.bootstrap(session, runtime.settings, Registration(email="a@example.com", password=PASSWORD))
        rival = threading.Thread(target=second)
        rival.start()
        time.sleep(0.5)  # the rival now waits on the first transaction (write lock or the flag's key)
    rival.join(timeout=30)
    assert len(outcome) == 1 and isinstance(outcome[0], Conflict)
    with runtime.db.session(write=False) as session:
        assert auth.bootstrap_needed(session) is False
        assert [u.email for u in auth.list_users(session, limit=10, offset=0).items] == ["a@example.com"]


# --- registration ------------------------------------------------------------------------------


def test_register_opens_the_account_and_says_the_same_for_a_taken_email(api: Api, runtime: Runtime) -> None:
    reply = api.post("/v1/auth/register", json={"email": "New@Example.com", "password": PASSWORD})
    assert reply.status_code == 201, reply.text
    me = api.as_(str(login(api, "new@example.com")["access_token"])).get("/v1/users/me").json()
    assert me["email"] == "new@example.com" and me["is_admin"] is False and me["status"] == "active"
    # a taken email gets the very same answer: sign-up does not tell who has an account
    taken = api.post("/v1/auth/register", json={"email": "new@example.com", "password": "another-password-1"})
    assert (taken.status_code, taken.json()) == (reply.status_code, reply.json())
    login(api, "new@example.com")  # the account and its password are unchanged
    with runtime.db.session(write=False) as session:
        mails = [(m.to_address, m.kind) for m in mail.outbox(session, limit=10)]
    assert sorted(mails) == [("new@example.com", "signup"), ("new@example.com", "signup_existing")]


def test_register_checks_email_and_password(api: Api) -> None:
    bad_email = api.post("/v1/auth/register", json={"email": "not-an-email", "password": PASSWORD})
    assert bad_email.status_code == 400 and "email" in bad_email.json()["error"]
    short = api.post("/v1/auth/register", json={"email": "a@example.com", "password": "short"})
    assert short.status_code == 400
    assert short.json() == {"error": "The password must be at least 8 characters."}
    missing = api.post("/v1/auth/register", json={"email": "a@example.com"})
    assert missing.status_code == 400 and "password" in missing.json()["error"]


class TestClosedRegistration:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        return {"allow_registration": False}

    def test_register_is_forbidden(self, api: Api) -> None:
        reply = api.post("/v1/auth/register", json={"email": "a@example.com", "password": PASSWORD})
        assert reply.status_code == 403
        assert "Registration is closed" in reply.json()["error"]


# --- login -------------------------------------------------------------------------------------


def test_login_answers_tokens_that_work(api: Api, runtime: Runtime) -> None:
    make_user(runtime, "jane@example.com")
    body = login(api, " JANE@example.com ")
    assert body["expires_in"] == 900 and body["token_type"] == "Bearer"
    assert str(body["access_token"]).startswith("eyJ")
    me = api.as_(str(body["access_token"])).get("/v1/users/me")
    assert me.status_code == 200 and me.json()["email"] == "jane@example.com"


def test_wrong_password_and_unknown_email_get_the_same_answer(api: Api, runtime: Runtime) -> None:
    make_user(runtime, "jane@example.com")
    wrong = api.post("/v1/auth/login", json={"email": "jane@example.com", "password": "not-the-password"})
    unknown = api.post("/v1/auth/login", json={"email": "nobody@example.com", "password": PASSWORD})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json() == {"error": "Invalid email or password."}


def test_login_is_limited_per_account_with_retry_after(api: Api, runtime: Runtime) -> None:
    make_user(runtime, "jane@example.com")
    for _ in range(10):  # login_rate_per_account = 10/minute
        guess = api.post("/v1/auth/login", json={"email": "jane@example.com", "password": "guess-1234"})
        assert guess.status_code == 401
    locked = api.post("/v1/auth/login", json={"email": "jane@example.com", "password": PASSWORD})
    assert locked.status_code == 429
    assert 1 <= int(locked.headers["Retry-After"]) <= 60
    assert "Too many sign-in attempts for this account" in locked.json()["error"]
    # Another account from the same address is not locked by Jane's.
    make_user(runtime, "joe@example.com")
    assert api.post("/v1/auth/login", json={"email": "joe@example.com", "password": PASSWORD}).status_code == 200


def test_login_is_limited_per_address(api: Api) -> None:
    for n in range(30):  # login_rate_per_address = 30/minute
        reply = api.post("/v1/auth/login", json={"email": f"user{n}@example.com", "password": "guess-1234"})
        assert reply.status_code == 401
    blocked = api.post("/v1/auth/login", json={"email": "someone@example.com", "password": "guess-1234"})
    assert blocked.status_code == 429 and "Retry-After" in blocked.headers
    assert "from this address" in blocked.json()["error"]


def test_expired_access_token_is_refused(api: Api, runtime: Runtime) -> None:
    make_user(runtime, "jane@example.com")
    access = str(login(api, "jane@example.com")["access_token"])
    with clock.travel(timedelta(minutes=14)):
        assert api.as_(access).get("/v1/users/me").status_code == 200
    with clock.travel(timedelta(minutes=15, seconds=1)):
        late = api.as_(access).get("/v1/users/me")
    assert late.status_code == 401
    assert late.json() == {"error": "The token has expired."}


def test_a_refresh_token_or_challenge_is_not_an_access_token(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    challenge = auth.encode_jwt(runtime.settings, subject=jane.id, kind="mfa_challenge", lifetime=timedelta(minutes=5))
    assert api.as_(challenge).get("/v1/users/me").status_code == 401


# --- refresh -----------------------------------------------------------------------------------


def test_refresh_rotates_the_token(api: Api, runtime: Runtime) -> None:
    make_user(runtime, "jane@example.com")
    first = login(api, "jane@example.com")
    reply = api.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reply.status_code == 200, reply.text
    second = reply.json()
    assert set(second) == {"access_token", "refresh_token", "expires_in", "token_type"}
    assert second["refresh_token"] != first["refresh_token"]
    assert api.as_(second["access_token"]).get("/v1/users/me").status_code == 200
    third = api.post("/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert third.status_code == 200


def test_a_reused_refresh_token_revokes_its_whole_family(api: Api, runtime: Runtime) -> None:
    make_user(runtime, "jane@example.com")
    stolen = login(api, "jane@example.com")["refresh_token"]
    other_session = login(api, "jane@example.com")["refresh_token"]
    renewed = api.post("/v1/auth/refresh", json={"refresh_token": stolen}).json()
    newest, access = renewed["refresh_token"], renewed["access_token"]
    assert api.as_(access).get("/v1/users/me").status_code == 200

    replay = api.post("/v1/auth/refresh", json={"refresh_token": stolen})
    assert replay.status_code == 401
    assert "already used" in replay.json()["error"]
    killed = api.post("/v1/auth/refresh", json={"refresh_token": newest})
    assert killed.status_code == 401
    assert api.as_(access).get("/v1/users/me").status_code == 401  # the family's access JWT dies with it, at once
    # A separate sign-in is a separate family and lives on.
    assert api.post("/v1/auth/refresh", json={"refresh_token": other_session}).status_code == 200


def test_unknown_and_expired_refresh_tokens_are_refused(api: Api, runtime: Runtime) -> None:
    make_user(runtime, "jane@example.com")
    unknown = api.post("/v1/auth/refresh", json={"refresh_token": "not-a-token"})
    assert unknown.status_code == 401
    token = login(api, "jane@example.com")["refresh_token"]
    with clock.travel(timedelta(days=30, minutes=1)):
        late = api.post("/v1/auth/refresh", json={"refresh_token": token})
    assert late.status_code == 401 and "expired" in late.json()["error"]


def test_logout_ends_one_family_or_all(api: Api, runtime: Runtime) -> None:
    make_user(runtime, "jane@example.com")
    one = login(api, "jane@example.com")
    two = login(api, "jane@example.com")
    three = login(api, "jane@example.com")
    out = api.as_(str(one["access_token"])).post("/v1/auth/logout", json={"refresh_token": one["refresh_token"]})
    assert out.status_code == 204
    assert api.post("/v1/auth/refresh", json={"refresh_token": one["refresh_token"]}).status_code == 401
    assert api.post("/v1/auth/refresh", json={"refresh_token": two["refresh_token"]}).status_code == 200
    everywhere = api.as_(str(three["access_token"])).post("/v1/auth/logout")
    assert everywhere.status_code == 204
    assert api.post("/v1/auth/refresh", json={"refresh_token": three["refresh_token"]}).status_code == 401


def test_logout_needs_a_session_not_an_api_token(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    assert api.as_(jane.token).post("/v1/auth/logout").status_code == 403
    assert api.post("/v1/auth/logout").status_code == 401
