"""Idempotency-Key on billable POSTs: a retry gets the first answer and money moves once."""

from __future__ import annotations

import threading
from datetime import timedelta

import httpx

from cloudlet.auth import service as auth
from cloudlet.billing import service as billing
from cloudlet.kit import clock
from cloudlet.surfaces.deps import Runtime
from tests.conftest import Api
from tests.helpers import make_user


def _balance(runtime: Runtime, project_id: int) -> int:
    with runtime.db.session(write=False) as s:
        return billing.balance_cents(s, runtime.settings, project_id)


def test_the_same_key_and_body_replays_the_first_answer_and_credits_once(api: Api, runtime: Runtime) -> None:
    admin = make_user(runtime, "admin@example.com", admin=True)
    client = api.as_(admin.token)
    first = client.post("/api/wallet/top-up", json={"amount_cents": 700}, headers={"Idempotency-Key": "order-1"})
    again = client.post("/api/wallet/top-up", json={"amount_cents": 700}, headers={"Idempotency-Key": "order-1"})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers.get("Idempotent-Replayed") == "true" and "Idempotent-Replayed" not in first.headers
    assert _balance(runtime, admin.project_id) == 700
    fresh = client.post("/api/wallet/top-up", json={"amount_cents": 700}, headers={"Idempotency-Key": "order-2"})
    assert fresh.status_code == 201 and fresh.json()["balance_cents"] == 1400
    unkeyed = client.post("/api/wallet/top-up", json={"amount_cents": 700})
    assert unkeyed.json()["balance_cents"] == 2100


def test_the_same_key_with_another_body_is_refused(api: Api, runtime: Runtime) -> None:
    admin = make_user(runtime, "admin2@example.com", admin=True)
    client = api.as_(admin.token)
    client.post("/api/wallet/top-up", json={"amount_cents": 700}, headers={"Idempotency-Key": "k"})
    other = client.post("/api/wallet/top-up", json={"amount_cents": 701}, headers={"Idempotency-Key": "k"})
    assert other.status_code == 422 and other.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    elsewhere = client.post("/v1/admin/wallets/1/credits", json={"amount_cents": 700}, headers={"Idempotency-Key": "k"})
    assert elsewhere.status_code == 400  # same key on another endpoint is another request (Shardlyn: 400)
    assert _balance(runtime, admin.project_id) == 700


def test_keys_are_scoped_per_user(api: Api, runtime: Runtime) -> None:
    one = make_user(runtime, "one@example.com", admin=True)
    two = make_user(runtime, "two@example.com", admin=True)
    a = api.as_(one.token).post("/api/wallet/top-up", json={"amount_cents": 100}, headers={"Idempotency-Key": "same"})
    b = api.as_(two.token).post("/api/wallet/top-up", json={"amount_cents": 100}, headers={"Idempotency-Key": "same"})
    assert a.status_code == b.status_code == 201
    assert "Idempotent-Replayed" not in b.headers
    assert _balance(runtime, one.project_id) == _balance(runtime, two.project_id) == 100


def test_a_failed_request_is_not_remembered(api: Api, runtime: Runtime) -> None:
    person = make_user(runtime, "plain@example.com")
    client = api.as_(person.token)
    refused = client.post("/api/wallet/top-up", json={"amount_cents": 100}, headers={"Idempotency-Key": "retry-me"})
    assert refused.status_code == 403
    with runtime.db.session() as s:
        auth.get_user(s, person.id).is_admin = True
    retried = client.post("/api/wallet/top-up", json={"amount_cents": 100}, headers={"Idempotency-Key": "retry-me"})
    assert retried.status_code == 201 and "Idempotent-Replayed" not in retried.headers


def test_keys_are_kept_a_day_then_forgotten(api: Api, runtime: Runtime) -> None:
    admin = make_user(runtime, "day@example.com", admin=True)
    client = api.as_(admin.token)
    client.post("/api/wallet/top-up", json={"amount_cents": 100}, headers={"Idempotency-Key": "daily"})
    with clock.travel(timedelta(hours=23, minutes=59)):
        late = client.post("/api/wallet/top-up", json={"amount_cents": 100}, headers={"Idempotency-Key": "daily"})
    assert late.headers.get("Idempotent-Replayed") == "true"
    with clock.travel(timedelta(hours=24, minutes=1)):
        expired = client.post("/api/wallet/top-up", json={"amount_cents": 100}, headers={"Idempotency-Key": "daily"})
    assert expired.status_code == 201 and "Idempotent-Replayed" not in expired.headers
    assert _balance(runtime, admin.project_id) == 200
    too_long = client.post("/api/wallet/top-up", json={"amount_cents": 1}, headers={"Idempotency-Key": "x" * 256})
    assert too_long.status_code == 422


def test_concurrent_requests_with_one_key_credit_once(api: Api, runtime: Runtime) -> None:
    admin = make_user(runtime, "race@example.com", admin=True)
    replies: list[httpx.Response] = []

    def send() -> None:
        replies.append(api.as_(admin.token).post("/api/wallet/top-up", json={"amount_cents": 300},
                                                 headers={"Idempotency-Key": "race"}))

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status_code for r in replies] == [201] * 6
    assert len({r.json()["transaction"]["id"] for r in replies}) == 1
    assert _balance(runtime, admin.project_id) == 300
