"""HTTP hardening in the app: security headers on every answer, access tokens that end at sign-out on every
replica, a request-body cap answered in each surface's error format, and WaysCloud 422s its OpenAPI declares."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator

from cloudlet.app import build_runtime, create_app
from cloudlet.surfaces.deps import Runtime
from cloudlet.surfaces.security_headers import HSTS
from tests.conftest import Api
from tests.helpers import PASSWORD, make_user

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "content-security-policy": "frame-ancestors 'none'",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}
CAP = 1024 * 1024  # the default CLOUDLET_MAX_BODY_BYTES


def _assert_secured(headers: Any, *, hsts: bool) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert headers.get(name) == value, (name, dict(headers))
    assert ("strict-transport-security" in headers) is hsts
    assert "server" not in headers


# --- 4.8: security headers -------------------------------------------------------------------------


def test_every_answer_carries_the_security_headers(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    answers = [
        api.get("/health"),  # Shardlyn, public
        api.as_(jane.jwt).get("/api/me"),  # primary, authenticated
        api.get("/api/me"),  # 401
        api.get("/api/no-such-endpoint"),  # 404
        api.as_(jane.token, header="x-api-key").post("/v1/vps", json={}),  # WaysCloud 422
        api.get("/openapi.json"),
        api.get("/docs"),
    ]
    assert [a.status_code for a in answers] == [200, 200, 401, 404, 422, 200, 200]
    for answer in answers:
        _assert_secured(answer.headers, hsts=False)  # plain HTTP to a server whose public URL is http


def _app_with_failure(runtime: Runtime) -> FastAPI:
    app = create_app(runtime=runtime)

    @app.get("/api/boom", include_in_schema=False)
    def boom() -> None:
        raise RuntimeError("a bug")

    return app


def test_a_500_carries_them_too(runtime: Runtime) -> None:
    with TestClient(_app_with_failure(runtime), raise_server_exceptions=False) as client:
        answer = client.get("/api/boom")
    assert answer.status_code == 500 and answer.json()["code"] == "INTERNAL_ERROR"
    _assert_secured(answer.headers, hsts=False)


def test_hsts_over_tls_or_behind_an_https_public_url(runtime: Runtime) -> None:
    with TestClient(create_app(runtime=runtime), base_url="https://cloudlet.test") as client:
        answer = client.get("/health")
    _assert_secured(answer.headers, hsts=True)
    assert answer.headers["strict-transport-security"] == HSTS

    behind_tls = dataclasses.replace(runtime, settings=runtime.settings.model_copy(
        update={"public_url": "https://cloud.example.com"}))
    with TestClient(create_app(runtime=behind_tls)) as client:
        _assert_secured(client.get("/health").headers, hsts=True)


# --- 4.8: access tokens end at sign-out --------------------------------------------------------------


def _login(api: Api | TestClient, email: str) -> dict[str, str]:
    reply = api.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert reply.status_code == 200, reply.text
    body: dict[str, str] = reply.json()
    return body


@pytest.fixture
def replica(runtime: Runtime) -> Iterator[TestClient]:
    """A second API server on the same database, as another replica behind the load balancer would be."""
    other = build_runtime(runtime.settings)
    try:
        with TestClient(create_app(runtime=other), raise_server_exceptions=False) as client:
            yield client
    finally:
        other.mailer.close()
        other.db.dispose()


def test_a_signed_out_access_token_is_refused_at_once_on_every_replica(api: Api, runtime: Runtime,
                                                                       replica: TestClient) -> None:
    make_user(runtime, "jane@example.com")
    phone, laptop = _login(api, "jane@example.com"), _login(api, "jane@example.com")
    for session in (phone, laptop):
        assert api.as_(session["access_token"]).get("/v1/users/me").status_code == 200

    out = api.as_(phone["access_token"]).post("/v1/auth/logout", json={"refresh_token": phone["refresh_token"]})
    assert out.status_code == 204
    bearer = {"Authorization": f"Bearer {phone['access_token']}"}
    for client in (api.client, replica):
        refused = client.get("/v1/users/me", headers=bearer)
        assert refused.status_code == 401 and "revoked" in refused.json()["error"]
        assert client.get("/api/me", headers=bearer).json()["code"] == "TOKEN_REVOKED"  # on every surface
    # the laptop's session was not the one ended: its token still works, and a new sign-in does too
    assert replica.get("/v1/users/me", headers={"Authorization": f"Bearer {laptop['access_token']}"}).status_code == 200
    again = _login(replica, "jane@example.com")
    assert api.as_(again["access_token"]).get("/v1/users/me").status_code == 200


def test_signing_out_everywhere_ends_every_access_token(api: Api, runtime: Runtime, replica: TestClient) -> None:
    make_user(runtime, "jane@example.com")
    phone, laptop = _login(api, "jane@example.com"), _login(api, "jane@example.com")
    assert replica.post("/v1/auth/logout", headers={"Authorization": f"Bearer {laptop['access_token']}"}
                        ).status_code == 204
    for session in (phone, laptop):
        assert api.as_(session["access_token"]).get("/v1/users/me").status_code == 401
        assert replica.post("/v1/auth/refresh", json={"refresh_token": session["refresh_token"]}).status_code == 401


def test_a_refreshed_token_of_a_live_session_survives_another_session_signing_out(api: Api,
                                                                                    runtime: Runtime) -> None:
    make_user(runtime, "jane@example.com")
    phone, laptop = _login(api, "jane@example.com"), _login(api, "jane@example.com")
    renewed = api.post("/v1/auth/refresh", json={"refresh_token": laptop["refresh_token"]}).json()
    api.as_(phone["access_token"]).post("/v1/auth/logout", json={"refresh_token": phone["refresh_token"]})
    assert api.as_(renewed["access_token"]).get("/v1/users/me").status_code == 200
    assert api.as_(phone["access_token"]).get("/v1/users/me").status_code == 401


# --- 4.6: the body cap, in each surface's error format ---------------------------------------------------


def _big_json(size: int) -> bytes:
    return b'{"email": "jane@example.com", "password": "' + b"p" * size + b'"}'


@pytest.mark.parametrize(("path", "shape"), [
    ("/v1/auth/login", {"error": f"The request body is larger than the {CAP} bytes this server accepts."}),
    ("/api/me/api-tokens", {"code": "PAYLOAD_TOO_LARGE"}),
    ("/api/v1/vps/create", {"success": False, "error_code": "PAYLOAD_TOO_LARGE"}),
    ("/v1/vps", {"code": "PAYLOAD_TOO_LARGE"}),
    ("/v1/workloads", {"status": "error", "code": "PAYLOAD_TOO_LARGE"}),
], ids=["shardlyn", "primary", "cyberpanel", "wayscloud", "elxega"])
def test_a_body_over_the_cap_gets_413_in_the_surface_format(api: Api, path: str, shape: dict[str, Any]) -> None:
    declared = api.post(path, content=_big_json(CAP), headers={"Content-Type": "application/json"})
    assert declared.status_code == 413, declared.text
    body = declared.json()
    assert shape.items() <= _flatten(body).items(), body
    if path == "/v1/workloads":
        return  # Elxega takes no body anywhere (a 405 here): nothing would read a streamed one

    def chunks() -> Iterator[bytes]:  # no Content-Length: the cap is counted as the body arrives
        yield b'{"email": "jane@example.com", "password": "'
        for _ in range(40):
            yield b"p" * 64 * 1024
        yield b'"}'

    streamed = api.post(path, content=chunks(), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413, streamed.text
    assert streamed.json() == body


def _flatten(body: dict[str, Any]) -> dict[str, Any]:
    """The body with Elxega's nested error object lifted, so that one shape check fits every surface."""
    nested = body.get("error")
    return {**body, **nested} if isinstance(nested, dict) else body


def test_a_body_under_the_cap_is_read_as_usual(api: Api) -> None:
    answer = api.post("/v1/auth/login", content=_big_json(CAP - 100), headers={"Content-Type": "application/json"})
    assert answer.status_code in (400, 401)  # judged on its content (a password too long), not its size


def test_the_cap_is_a_setting(runtime: Runtime) -> None:
    small = dataclasses.replace(runtime, settings=runtime.settings.model_copy(update={"max_body_bytes": 64}))
    with TestClient(create_app(runtime=small)) as client:
        assert client.post("/v1/auth/login", content=_big_json(100)).status_code == 413
        assert client.post("/v1/auth/login", json={"email": "a@b.co", "password": "x"}).status_code != 413


# --- 4.9: WaysCloud's 422 is the one its OpenAPI document declares ----------------------------------------


def _declared_422(app: FastAPI, path: str, method: str) -> Draft202012Validator:
    document = app.openapi()
    schema = document["paths"][path][method]["responses"]["422"]["content"]["application/json"]["schema"]
    return Draft202012Validator({**schema, "components": document["components"]})


def test_wayscloud_422_bodies_validate_against_the_declared_schema(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    validator = _declared_422(api.client.app, "/v1/vps", "post")  # type: ignore[arg-type]
    client = api.as_(jane.token, header="x-api-key")
    for body in ({}, {"hostname": 5, "plan_code": ["x"]}, {"hostname": "web01.example.com", "plan_code": "nope",
                                                             "region": "nowhere", "os_template": "none"}):
        answer = client.post("/v1/vps", json=body)
        assert answer.status_code == 422, answer.text
        problem = answer.json()
        validator.validate(problem)  # raises, with the reason, when the body breaks the schema
        assert problem["detail"] and all(item["loc"][0] == "body" for item in problem["detail"])
        assert problem["message"] and problem["code"]
    not_json = client.post("/v1/vps", content=b"{", headers={"Content-Type": "application/json"})
    assert not_json.status_code == 422
    validator.validate(not_json.json())
