"""TOTP multi-factor sign-in: enrolment, the login challenge, drift, no replay, rate limits."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pyotp

from cloudlet.auth.models import User
from cloudlet.kit import clock
from cloudlet.kit.secretbox import SecretBox
from cloudlet.surfaces.deps import Runtime
from tests.conftest import Api
from tests.helpers import PASSWORD, Person, make_user


@contextmanager
def mid_step() -> Iterator[None]:
    """Hold the clock in the middle of a 30 s step, so no step boundary falls inside the test."""
    with clock.travel(timedelta(seconds=15 - time.time() % 30)):
        yield


def code_at(secret: str, offset_steps: int = 0) -> str:
    return pyotp.TOTP(secret).at(int(clock.now().timestamp()) + 30 * offset_steps)


def enable_mfa(api: Api, person: Person) -> str:
    enrolled = api.as_(person.jwt).post("/v1/auth/mfa/enroll")
    assert enrolled.status_code == 200, enrolled.text
    secret: str = enrolled.json()["secret"]
    verified = api.as_(person.jwt).post("/v1/auth/mfa/verify", json={"code": code_at(secret)})
    assert verified.status_code == 200, verified.text
    return secret


def test_enrolment_turns_on_only_after_a_valid_code(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    me = api.as_(jane.jwt)
    assert me.get("/v1/auth/mfa/status").json() == {"enabled": False}
    enrolled = me.post("/v1/auth/mfa/enroll").json()
    uri = urlparse(enrolled["otpauth_uri"])
    assert uri.scheme == "otpauth" and uri.netloc == "totp"
    assert uri.path == "/Cloudlet:jane%40example.com"
    assert parse_qs(uri.query) == {"secret": [enrolled["secret"]], "issuer": ["Cloudlet"]}
    assert me.get("/v1/auth/mfa/status").json() == {"enabled": False}

    not_it = "000000" if code_at(enrolled["secret"]) != "000000" else "111111"
    wrong = me.post("/v1/auth/mfa/verify", json={"code": not_it})
    assert wrong.status_code == 400 and "not valid" in wrong.json()["error"]
    assert me.post("/v1/auth/mfa/verify", json={"code": code_at(enrolled["secret"])}).json() == {"enabled": True}
    assert me.get("/v1/auth/mfa/status").json() == {"enabled": True}
    again = me.post("/v1/auth/mfa/enroll")
    assert again.status_code == 409


def test_the_totp_secret_is_kept_only_sealed(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    secret = enable_mfa(api, jane)
    with runtime.db.session(write=False) as session:
        stored = session.get(User, jane.id)
        assert stored is not None and stored.mfa_secret is not None
        assert secret not in stored.mfa_secret
        assert SecretBox(runtime.settings.jwt_secret, "mfa").open(stored.mfa_secret) == secret


def test_mfa_endpoints_need_a_signed_in_session(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    assert api.as_(jane.token).post("/v1/auth/mfa/enroll").status_code == 403
    assert api.get("/v1/auth/mfa/status").status_code == 401


def test_login_with_mfa_asks_for_a_code_and_a_code_cannot_be_replayed(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    with mid_step():
        secret = enable_mfa(api, jane)
        first = api.post("/v1/auth/login", json={"email": "jane@example.com", "password": PASSWORD}).json()
        assert set(first) == {"mfa_required", "challenge_token", "expires_in"}
        assert first["mfa_required"] is True and first["expires_in"] == 300

        # The code that turned MFA on was for this step; it cannot sign in too.
        replayed = api.post("/v1/auth/mfa/challenge",
                            json={"challenge_token": first["challenge_token"], "code": code_at(secret)})
        assert replayed.status_code == 401
        signed_in = api.post("/v1/auth/mfa/challenge",
                             json={"challenge_token": first["challenge_token"], "code": code_at(secret, 1)})
        assert signed_in.status_code == 200, signed_in.text
        assert set(signed_in.json()) == {"access_token", "refresh_token", "expires_in", "token_type"}
        assert api.as_(signed_in.json()["access_token"]).get("/v1/users/me").json()["mfa_enabled"] is True

        second = api.post("/v1/auth/login", json={"email": "jane@example.com", "password": PASSWORD}).json()
        again = api.post("/v1/auth/mfa/challenge",
                         json={"challenge_token": second["challenge_token"], "code": code_at(secret, 1)})
        assert again.status_code == 401
        assert "not valid" in again.json()["error"]


def test_exactly_one_step_of_drift_either_way(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    with mid_step():
        enrolled = api.as_(jane.jwt).post("/v1/auth/mfa/enroll").json()
        secret = enrolled["secret"]
        verify = api.as_(jane.jwt).post
        assert verify("/v1/auth/mfa/verify", json={"code": code_at(secret, -2)}).status_code == 400
        assert verify("/v1/auth/mfa/verify", json={"code": code_at(secret, 2)}).status_code == 400
        assert verify("/v1/auth/mfa/verify", json={"code": code_at(secret, -1)}).status_code == 200
        challenge = api.post("/v1/auth/login", json={"email": "jane@example.com", "password": PASSWORD}).json()
        reply = api.post("/v1/auth/mfa/challenge",
                         json={"challenge_token": challenge["challenge_token"], "code": code_at(secret, 1)})
        assert reply.status_code == 200


def test_an_expired_or_forged_challenge_is_refused(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    with mid_step():
        secret = enable_mfa(api, jane)
    challenge = api.post("/v1/auth/login",
                         json={"email": "jane@example.com", "password": PASSWORD}).json()["challenge_token"]
    with clock.travel(timedelta(minutes=5, seconds=1)):
        late = api.post("/v1/auth/mfa/challenge", json={"challenge_token": challenge, "code": code_at(secret)})
    assert late.status_code == 401 and "expired" in late.json()["error"]
    forged = api.post("/v1/auth/mfa/challenge", json={"challenge_token": jane.jwt, "code": code_at(secret)})
    assert forged.status_code == 401


def test_disable_requires_a_valid_code(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    with mid_step():
        secret = enable_mfa(api, jane)
        me = api.as_(jane.jwt)
        assert me.post("/v1/auth/mfa/disable", json={"code": "12345"}).status_code == 400
        assert me.post("/v1/auth/mfa/disable", json={"code": code_at(secret)}).status_code == 400  # already used
        assert me.post("/v1/auth/mfa/disable", json={"code": code_at(secret, 1)}).json() == {"enabled": False}
    assert me.get("/v1/auth/mfa/status").json() == {"enabled": False}
    plain = api.post("/v1/auth/login", json={"email": "jane@example.com", "password": PASSWORD}).json()
    assert "access_token" in plain


def test_mfa_attempts_are_limited_to_five_a_minute(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    me = api.as_(jane.jwt)
    me.post("/v1/auth/mfa/enroll")  # attempt 1
    for _ in range(4):  # attempts 2-5
        assert me.post("/v1/auth/mfa/verify", json={"code": "abcdef"}).status_code == 400
    limited = me.post("/v1/auth/mfa/verify", json={"code": "abcdef"})
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert "Too many MFA attempts" in limited.json()["error"]


def test_challenge_guesses_are_limited(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    with mid_step():
        enable_mfa(api, jane)  # enroll + verify: two attempts of this user and address
    challenge = api.post("/v1/auth/login",
                         json={"email": "jane@example.com", "password": PASSWORD}).json()["challenge_token"]
    statuses = [api.post("/v1/auth/mfa/challenge", json={"challenge_token": challenge, "code": "999999"}).status_code
                for _ in range(4)]
    assert statuses == [401, 401, 401, 429]


def test_a_suspended_user_cannot_finish_a_challenge(api: Api, runtime: Runtime) -> None:
    root = make_user(runtime, "root@example.com", admin=True)
    jane = make_user(runtime, "jane@example.com")
    with mid_step():
        secret = enable_mfa(api, jane)
        challenge = api.post("/v1/auth/login",
                             json={"email": "jane@example.com", "password": PASSWORD}).json()["challenge_token"]
        assert api.as_(root.jwt).post(f"/v1/admin/users/{jane.id}/suspend").status_code == 200
        refused = api.post("/v1/auth/mfa/challenge", json={"challenge_token": challenge, "code": code_at(secret, 1)})
    assert refused.status_code == 403
