"""GitHub sign-in against a fake GitHub on 127.0.0.1 that speaks the real OAuth web flow and REST shapes."""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import httpx
import pytest

from cloudlet.surfaces.deps import Runtime
from tests.conftest import Api
from tests.helpers import PASSWORD, make_user

CLIENT_ID = "Iv1.0123456789abcdef"
CLIENT_SECRET = "fake-github-client-secret-0123456789abcdef"
CALLBACK = "http://cloudlet.test/v1/auth/github/callback"


@dataclass
class GitHubAccount:
    """A GitHub user as the REST API shows it."""

    id: int
    login: str
    name: str | None
    emails: list[dict[str, Any]] = field(default_factory=list)


class FakeGitHub:
    """github.com's OAuth endpoints and api.github.com's /user and /user/emails, in one small server."""

    def __init__(self) -> None:
        self.signed_in: GitHubAccount | None = None  # who "clicks Authorize" on the consent page
        self.codes: dict[str, tuple[GitHubAccount, str]] = {}  # code -> (account, redirect_uri)
        self.tokens: dict[str, GitHubAccount] = {}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # the stdlib's name
                pass

            def _json(self, status: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # http.server's hook name
                url = urlparse(self.path)
                if url.path == "/login/oauth/authorize":
                    fake.authorize(self, parse_qs(url.query))
                    return
                account = fake.tokens.get(self.headers.get("Authorization", "").removeprefix("Bearer ").strip())
                if account is None:
                    self._json(401, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"})
                elif url.path == "/user":
                    self._json(200, {"login": account.login, "id": account.id, "node_id": f"MDQ6VXNlcj{account.id}",
                                     "type": "User", "site_admin": False, "name": account.name,
                                     "email": next((e["email"] for e in account.emails if e["visibility"] == "public"),
                                                   None)})
                elif url.path == "/user/emails":
                    self._json(200, account.emails)
                else:
                    self._json(404, {"message": "Not Found"})

            def do_POST(self) -> None:  # http.server's hook name
                if urlparse(self.path).path != "/login/oauth/access_token":
                    self._json(404, {"message": "Not Found"})
                    return
                length = int(self.headers.get("Content-Length", "0"))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                if "application/json" not in self.headers.get("Accept", ""):
                    self._json(406, {"error": "this fake only answers JSON"})
                    return
                self._json(200, fake.exchange(form))

        return Handler

    def authorize(self, handler: BaseHTTPRequestHandler, query: dict[str, list[str]]) -> None:
        """The consent page: the signed-in account authorizes, and the browser goes back with a code."""
        assert self.signed_in is not None, "set fake.signed_in first"
        assert query["client_id"] == [CLIENT_ID]
        code = secrets.token_hex(10)
        redirect_uri = query["redirect_uri"][0]
        self.codes[code] = (self.signed_in, redirect_uri)
        handler.send_response(302)
        handler.send_header("Location", f"{redirect_uri}?{urlencode({'code': code, 'state': query['state'][0]})}")
        handler.end_headers()

    def exchange(self, form: dict[str, str]) -> dict[str, str]:
        """POST /login/oauth/access_token: GitHub answers 200 with either a token or an error object."""
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return {"error": "incorrect_client_credentials",
                    "error_description": "The client_id and/or client_secret passed are incorrect."}
        grant = self.codes.pop(form.get("code", ""), None)
        if grant is None:
            return {"error": "bad_verification_code", "error_description": "The code passed is incorrect or expired."}
        account, redirect_uri = grant
        if form.get("redirect_uri", redirect_uri) != redirect_uri:
            return {"error": "redirect_uri_mismatch", "error_description":
                    "The redirect_uri MUST match the registered callback URL for this application."}
        token = "gho_" + secrets.token_hex(18)
        self.tokens[token] = account
        return {"access_token": token, "token_type": "bearer", "scope": "read:user,user:email"}

    def __enter__(self) -> FakeGitHub:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        yield fake


def github_settings(github: FakeGitHub, **more: object) -> dict[str, object]:
    """Settings that point GitHub sign-in at the fake, and any others."""
    return {"github_client_id": CLIENT_ID, "github_client_secret": CLIENT_SECRET,
            "github_authorize_url": f"{github.base}/login/oauth/authorize",
            "github_token_url": f"{github.base}/login/oauth/access_token",
            "github_api_url": github.base, **more}


@pytest.fixture
def settings_overrides(github: FakeGitHub) -> dict[str, object]:
    return github_settings(github)


def octocat(**changes: Any) -> GitHubAccount:
    values: dict[str, Any] = {"id": 583231, "login": "octocat", "name": "The Octocat", "emails": [
        {"email": "octocat@example.com", "verified": True, "primary": True, "visibility": "public"},
        {"email": "cat@example.org", "verified": True, "primary": False, "visibility": None},
    ]}
    values.update(changes)
    return GitHubAccount(**values)


def sign_in_with_github(api: Api, github: FakeGitHub, account: GitHubAccount) -> Any:
    """Walk the browser's path: Cloudlet -> GitHub's consent page -> back to Cloudlet's callback."""
    github.signed_in = account
    start = api.get("/v1/auth/github", follow_redirects=False)
    assert start.status_code == 302, start.text
    consent = httpx.get(start.headers["location"], follow_redirects=False)
    assert consent.status_code == 302
    back = urlparse(consent.headers["location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == CALLBACK
    return api.get(f"{back.path}?{back.query}")


def test_the_redirect_carries_client_callback_scope_and_a_signed_state(api: Api, github: FakeGitHub) -> None:
    start = api.get("/v1/auth/github", follow_redirects=False)
    assert start.status_code == 302
    url = urlparse(start.headers["location"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{github.base}/login/oauth/authorize"
    query = parse_qs(url.query)
    assert query["client_id"] == [CLIENT_ID]
    assert query["redirect_uri"] == [CALLBACK]
    assert query["scope"] == ["read:user user:email"]
    assert query["state"][0].startswith("eyJ")


def test_a_new_github_user_gets_an_account_and_keeps_it(api: Api, github: FakeGitHub) -> None:
    reply = sign_in_with_github(api, github, octocat())
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert set(body) == {"access_token", "refresh_token", "expires_in", "token_type"}
    me = api.as_(body["access_token"]).get("/v1/users/me").json()
    assert me["email"] == "octocat@example.com" and me["name"] == "The Octocat" and me["is_admin"] is False

    # The link is the GitHub id: a changed primary email still finds the same account.
    moved = octocat(emails=[{"email": "new@example.net", "verified": True, "primary": True, "visibility": None}])
    again = sign_in_with_github(api, github, moved)
    assert api.as_(again.json()["access_token"]).get("/v1/users/me").json()["id"] == me["id"]
    # An OAuth-only account has no password to sign in with.
    assert api.post("/v1/auth/login", json={"email": "octocat@example.com", "password": ""}).status_code == 401


def test_an_existing_account_is_linked_by_verified_primary_email(api: Api, runtime: Runtime,
                                                                 github: FakeGitHub) -> None:
    jane = make_user(runtime, "jane@example.com")
    account = octocat(id=42, login="jane-gh", emails=[
        {"email": "JANE@example.com", "verified": True, "primary": True, "visibility": "private"}])
    reply = sign_in_with_github(api, github, account)
    assert reply.status_code == 200, reply.text
    assert api.as_(reply.json()["access_token"]).get("/v1/users/me").json()["id"] == jane.id
    # Her password still works too.
    assert api.post("/v1/auth/login", json={"email": "jane@example.com", "password": PASSWORD}).status_code == 200


def test_an_unverified_email_is_neither_linked_nor_used(api: Api, runtime: Runtime, github: FakeGitHub) -> None:
    make_user(runtime, "jane@example.com")
    impostor = octocat(id=77, login="not-jane", emails=[
        {"email": "jane@example.com", "verified": False, "primary": True, "visibility": "public"}])
    reply = sign_in_with_github(api, github, impostor)
    assert reply.status_code == 400
    assert reply.json() == {"error": "Your GitHub account has no verified primary email to sign up with."}


def test_a_forged_state_or_a_bad_code_is_refused(api: Api, github: FakeGitHub) -> None:
    github.signed_in = octocat()
    start = api.get("/v1/auth/github", follow_redirects=False)
    back = parse_qs(urlparse(httpx.get(start.headers["location"], follow_redirects=False).headers["location"]).query)
    forged = api.get("/v1/auth/github/callback", params={"code": back["code"][0], "state": "eyJ.forged.state"})
    assert forged.status_code == 400
    assert "start again" in forged.json()["error"]
    bad_code = api.get("/v1/auth/github/callback", params={"code": "not-a-code", "state": back["state"][0]})
    assert bad_code.status_code == 400
    assert bad_code.json() == {"error": "GitHub refused the sign-in: The code passed is incorrect or expired."}
    denied = api.get("/v1/auth/github/callback", params={
        "error": "access_denied", "error_description": "The user has denied your application access.",
        "state": back["state"][0]})
    assert denied.status_code == 400 and "denied" in denied.json()["error"]


def test_a_suspended_account_cannot_sign_in_with_github(api: Api, runtime: Runtime, github: FakeGitHub) -> None:
    root = make_user(runtime, "root@example.com", admin=True)
    first = sign_in_with_github(api, github, octocat())
    user_id = api.as_(first.json()["access_token"]).get("/v1/users/me").json()["id"]
    assert api.as_(root.jwt).post(f"/v1/admin/users/{user_id}/suspend").status_code == 200
    assert sign_in_with_github(api, github, octocat()).status_code == 403


class TestClosedRegistration:
    @pytest.fixture
    def settings_overrides(self, github: FakeGitHub) -> dict[str, object]:
        return github_settings(github, allow_registration=False)

    def test_a_new_github_user_is_refused(self, api: Api, github: FakeGitHub) -> None:
        reply = sign_in_with_github(api, github, octocat())
        assert reply.status_code == 403 and "Registration is closed" in reply.json()["error"]


class TestNotConfigured:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        return {}

    def test_both_endpoints_answer_501(self, api: Api) -> None:
        message = ("GitHub sign-in is not configured on this server: "
                   "set CLOUDLET_GITHUB_CLIENT_ID and CLOUDLET_GITHUB_CLIENT_SECRET.")
        start = api.get("/v1/auth/github", follow_redirects=False)
        assert start.status_code == 501 and start.json() == {"error": message}
        callback = api.get("/v1/auth/github/callback", params={"code": "x", "state": "y"})
        assert callback.status_code == 501 and callback.json() == {"error": message}


class TestSignUpLimit:
    @pytest.fixture
    def settings_overrides(self, github: FakeGitHub) -> dict[str, object]:
        return github_settings(github, signup_rate_per_address="2/hour")

    def test_new_accounts_from_one_address_are_limited_but_existing_ones_sign_in(self, api: Api,
                                                                                  github: FakeGitHub) -> None:
        def account(number: int) -> GitHubAccount:
            return octocat(id=1000 + number, login=f"cat{number}", emails=[
                {"email": f"cat{number}@example.com", "verified": True, "primary": True, "visibility": None}])

        for number in (1, 2):
            assert sign_in_with_github(api, github, account(number)).status_code == 200
        third = sign_in_with_github(api, github, account(3))
        assert third.status_code == 429 and "Too many sign-ups" in third.json()["error"], third.text
        assert int(third.headers["Retry-After"]) > 0
        again = sign_in_with_github(api, github, account(1))  # signing in is not signing up
        assert again.status_code == 200, again.text
