"""Per-token rate limits: headers on every authenticated answer, 429 in each surface's format,
the hour window, and one shared counter for several replicas when Redis is configured."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from fastapi.testclient import TestClient

from cloudlet.app import build_runtime, create_app
from cloudlet.kit import migrate
from cloudlet.surfaces.deps import Runtime
from tests.conftest import IN_CI, REDIS_URL, Api, make_settings
from tests.helpers import make_user, mint_token

RETRY = re.compile(r"^You have exceeded the per (minute|hour) rate limit\. Please retry after (\d+) seconds\.$")


def _rate(reply: httpx.Response) -> tuple[int, int, int]:
    headers = reply.headers
    return int(headers["X-RateLimit-Limit"]), int(headers["X-RateLimit-Remaining"]), int(headers["X-RateLimit-Reset"])


def _spend(client: httpx.Client, path: str, times: int) -> None:
    for _ in range(times):
        reply = client.get(path)
        assert reply.status_code == 200, reply.text


def _refusal(reply: httpx.Response, window: str) -> str:
    """Check a 429's headers; return its message."""
    assert reply.status_code == 429, reply.text
    retry_after = int(reply.headers["Retry-After"])
    assert reply.headers["X-RateLimit-Remaining"] == "0"
    message: str = reply.json()["error" if set(reply.json()) == {"error"} else "message"]
    match = RETRY.match(message)
    assert match, message
    assert match.group(1) == window and int(match.group(2)) == retry_after
    return message


def test_headers_on_success_and_error_answers(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    token = api.as_(jane.token).post("/api/me/api-tokens", json={"name": "defaults"}).json()["token"]
    client = api.as_(token)
    before = int(time.time())
    answers = [client.get("/api/v1/test"),  # 200
               client.get("/api/v1/account/api-keys/424242/usage"),  # 404
               client.post("/api/v1/account/api-keys", json={}),  # 400
               client.get("/api/v1/account/api-keys/1/usage?limit=500"),  # 400
               api.as_(mint_token(runtime, jane, "vps:read")).get("/api/v1/account/api-keys")]  # 403
    assert [a.status_code for a in answers] == [200, 404, 400, 400, 403]
    limits = [_rate(a) for a in answers[:4]]
    assert [limit for limit, _, _ in limits] == [60, 60, 60, 60]  # the settings' default per minute
    assert [remaining for _, remaining, _ in limits] == [59, 58, 57, 56]
    for _, _, reset in limits:
        assert before < reset <= int(time.time()) + 61  # epoch seconds, within the minute window
    assert _rate(answers[4])[0] == 10_000
    assert "X-RateLimit-Limit" not in api.get("/api/v1/test").headers  # 401: no one to count


def test_the_tightest_window_is_reported(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    token = mint_token(runtime, jane, "*", rate_limit_per_minute=5, rate_limit_per_hour=4)
    limit, remaining, reset = _rate(api.as_(token).get("/api/v1/test"))
    assert (limit, remaining) == (4, 3)
    assert time.time() + 3500 < reset <= time.time() + 3601  # the hour window's end


def test_past_the_minute_limit_each_surface_answers_429(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    for path in ("/api/v1/test", "/api/me/api-tokens", "/v1/api-tokens"):
        client = api.as_(mint_token(runtime, jane, "*", rate_limit_per_minute=3))
        _spend(client, path, 3)
        refused = client.get(path)
        message = _refusal(refused, "minute")
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert _rate(refused)[0] == 3
        if path.startswith("/api/v1/"):
            assert refused.json() == {"success": False, "error": "Rate limit exceeded",
                                      "error_code": "RATE_LIMIT_EXCEEDED", "message": message}
        elif path.startswith("/api/"):
            assert refused.json() == {"message": message, "code": "RATE_LIMIT_EXCEEDED"}
        else:
            assert refused.json() == {"error": message}
        # the counter is the token's, whatever the surface
        assert client.get("/api/v1/scopes").status_code == 200  # public: not counted
        assert client.get("/v1/api-tokens").status_code == 429


def test_the_hour_limit_and_a_limit_changed_by_patch(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    client = api.as_(mint_token(runtime, jane, "*", rate_limit_per_minute=60, rate_limit_per_hour=3))
    _spend(client, "/api/v1/test", 3)
    refused = client.get("/api/v1/test")
    _refusal(refused, "hour")
    assert 60 < int(refused.headers["Retry-After"]) <= 3600

    created = api.as_(jane.token).post("/api/me/api-tokens", json={"name": "bot"}).json()
    assert _rate(api.as_(created["token"]).get("/api/v1/test"))[0] == 60
    # limits are the signed-in user's to change, never a token's (test_token_fences.py)
    changed = api.as_(jane.jwt).patch(f"/api/me/api-tokens/{created['id']}", json={"rate_limit_per_minute": 2})
    assert changed.status_code == 200, changed.text
    # a changed limit counts in a fresh window of its own
    _spend(api.as_(created["token"]), "/api/v1/test", 2)
    refused = api.as_(created["token"]).get("/api/v1/test")
    _refusal(refused, "minute")
    assert _rate(refused)[0] == 2


def test_rate_limited_requests_are_in_the_usage_log(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    token = mint_token(runtime, jane, "*", rate_limit_per_minute=1)
    api.as_(token).get("/api/v1/test")
    api.as_(token).get("/api/v1/test")
    key_id = token.split("|")[0]
    logs = api.as_(jane.token).get(f"/api/v1/account/api-keys/{key_id}/usage").json()["data"]["usage_logs"]
    assert [u["response_status"] for u in logs] == [429, 200]


@pytest.fixture
def redis_url() -> str:
    """The Redis the cross-replica tests share (skipped without one, failed in CI)."""
    if not REDIS_URL:
        message = "Redis tests are off: set CLOUDLET_TEST_REDIS_URL, e.g. redis://127.0.0.1:6379/15"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return REDIS_URL


@pytest.fixture
def replicas(redis_url: str, database_url: str, tmp_path: Path) -> Iterator[tuple[Runtime, TestClient, TestClient]]:
    """Two API servers over one database and one Redis, under a prefix of this test's own."""
    prefix = f"cloudlet-test-{uuid.uuid4().hex[:12]}"
    settings = make_settings(tmp_path, database_url, redis_url=redis_url, redis_prefix=prefix)
    first, second = build_runtime(settings), build_runtime(settings)
    migrate.upgrade(first.db.engine)
    try:
        with TestClient(create_app(runtime=first), raise_server_exceptions=False) as a, \
                TestClient(create_app(runtime=second), raise_server_exceptions=False) as b:
            yield first, a, b
    finally:
        store = redis.Redis.from_url(redis_url)
        for key in store.scan_iter(match=f"{prefix}*"):
            store.delete(key)
        store.close()
        for rt in (first, second):
            rt.mailer.close()
            rt.db.dispose()


def test_replicas_share_one_counter_in_redis(replicas: tuple[Runtime, TestClient, TestClient]) -> None:
    runtime, a, b = replicas
    jane = make_user(runtime, "jane@example.com")
    token = mint_token(runtime, jane, "*", rate_limit_per_minute=3)
    headers = {"Authorization": f"Bearer {token}"}
    remaining = [_rate(client.get("/api/v1/test", headers=headers))[1] for client in (a, b, a)]
    assert remaining == [2, 1, 0]
    _refusal(b.get("/api/v1/test", headers=headers), "minute")
    _refusal(a.get("/api/v1/test", headers=headers), "minute")
    for client in (a, b):
        report = client.get("/health/detailed").json()
        assert report["checks"]["redis"]["status"] == "ok"
