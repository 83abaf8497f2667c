"""What an authenticated read costs: no write in its transaction, a cached token, a batched usage log.

The server here runs as production does (usage_log_sync off): a GET's usage line and its token's
count are written by the request log's writer within a second, or at shutdown, never by the GET.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select

from cloudlet.app import build_runtime, create_app
from cloudlet.kit.fresh import FreshCache
from cloudlet.surfaces.deps import Runtime
from cloudlet.tokens.models import ApiToken, TokenUsage
from tests.conftest import Api, make_settings
from tests.helpers import Person, make_user

WRITES = ("INSERT", "UPDATE", "DELETE")


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Production's setting: reads do not wait for their usage line."""
    return {"usage_log_sync": False}


@contextmanager
def statements(runtime: Runtime) -> Iterator[list[tuple[str, str]]]:
    """Every SQL statement run on the runtime's engine meanwhile, with the name of the thread that ran it."""
    seen: list[tuple[str, str]] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append((threading.current_thread().name, statement.lstrip().upper()))

    event.listen(runtime.db.engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(runtime.db.engine, "before_cursor_execute", note)


def token_row(runtime: Runtime, token_id: int) -> tuple[int, Any, int]:
    """The token's request count, last use and number of usage-log lines, as committed."""
    with runtime.db.session(write=False) as session:
        token = session.get(ApiToken, token_id)
        assert token is not None
        lines = session.scalar(select(func.count()).select_from(TokenUsage).where(TokenUsage.token_id == token_id))
        return token.request_count, token.last_used_at, int(lines or 0)


def wait_for(condition: Callable[[], bool], seconds: float) -> float:
    """Poll the condition until it holds; the seconds it took (fails after `seconds`)."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > seconds:
            pytest.fail(f"the condition did not hold within {seconds} s")
        time.sleep(0.02)
    return time.monotonic() - started


def last_stale_start(since: float, ask: Callable[[], bool], seconds: float = 5) -> float:
    """Ask (True: the answer is stale) one request after another until an answer is fresh; the seconds after
    `since` at which the last stale answer's request began (0 when none was stale).

    When a request began is what a cache's bound is about: an answer read from the cache a moment before the
    entry expired may still come back much later on a machine that is busy.
    """
    last = 0.0
    while True:
        began = time.monotonic()
        if not ask():
            return last
        last = began - since
        if last > seconds:
            pytest.fail(f"still stale {seconds} s later")
        time.sleep(0.02)


def token_id(person: Person) -> int:
    """The id of the person's `*` token (its plaintext is `<id>|<secret>`)."""
    return int(person.token.split("|")[0])


def test_a_get_writes_nothing_in_its_transaction_and_a_known_token_costs_no_lookup(
        api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    client = api.as_(jane.token)

    with statements(runtime) as seen:
        first = client.get("/api/me")  # reads the token and the answer
        read = len(seen)
        again = client.get("/api/me")

    assert first.status_code == again.status_code == 200 and again.json() == first.json()
    mine = [sql for thread, sql in seen if thread != "cloudlet-bookkeeping"]
    assert mine[:read], "the first request ran no statement at all: the listener is not attached"
    assert [sql for sql in mine if sql.startswith(WRITES)] == []
    assert [sql for thread, sql in seen[read:] if thread != "cloudlet-bookkeeping"] == []  # token and answer kept


def test_me_shows_a_change_committed_here_at_once_and_on_another_replica_within_a_second(
        api: Api, runtime: Runtime, tmp_path: Path, database_url: str) -> None:
    admin = make_user(runtime, "admin@example.com", admin=True)
    jane = make_user(runtime, "jane@example.com")
    other = build_runtime(make_settings(tmp_path / "replica", database_url, usage_log_sync=False))

    def balance(client: Any) -> int:
        reply = client.get("/api/me", headers={"Authorization": f"Bearer {jane.token}"})
        assert reply.status_code == 200, reply.text
        return int(reply.json()["user"]["wallet_balance"])

    try:
        with TestClient(create_app(runtime=other)) as replica:
            assert balance(replica) == balance(api.client) == 0  # both now keep the answer
            credit = api.as_(admin.token).post(f"/v1/admin/wallets/{jane.project_id}/credits",
                                               json={"amount_cents": 700, "reason": "welcome"})
            assert credit.status_code in (200, 201), credit.text
            credited = time.monotonic()
            assert balance(api.client) == 700  # this replica made the change: it shows at once
            assert last_stale_start(credited, lambda: balance(replica) != 700) < FreshCache.SECONDS
    finally:
        other.mailer.close()
        other.db.dispose()


def test_usage_counts_and_last_use_are_written_within_a_second(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    for _ in range(3):
        assert api.as_(jane.token).get("/api/me").status_code == 200
    answered = time.monotonic()

    wait_for(lambda: token_row(runtime, token_id(jane))[0] == 3, seconds=5)

    assert time.monotonic() - answered < 2.5  # one flush interval (1 s) and the write, with room for a slow machine
    count, last_used, lines = token_row(runtime, token_id(jane))
    assert count == 3 and last_used is not None and lines == 3


def test_usage_left_in_the_batch_is_written_at_shutdown(runtime: Runtime, tmp_path: Path, database_url: str) -> None:
    jane = make_user(runtime, "jane@example.com")
    # a flush interval far longer than the test: only the shutdown can write these lines
    patient = build_runtime(make_settings(tmp_path / "patient", database_url, usage_log_sync=False,
                                          usage_flush_seconds=600))
    try:
        with TestClient(create_app(runtime=patient)) as client:
            for _ in range(2):
                assert client.get("/api/me", headers={"Authorization": f"Bearer {jane.token}"}).status_code == 200
            time.sleep(0.3)  # a writer that did not wait would have written by now
            assert token_row(runtime, token_id(jane)) == (0, None, 0)
        count, last_used, lines = token_row(runtime, token_id(jane))
        assert count == 2 and last_used is not None and lines == 2
    finally:
        patient.mailer.close()
        patient.db.dispose()


def test_a_revoked_token_is_refused_at_once_here_and_within_a_second_on_another_replica(
        api: Api, runtime: Runtime, tmp_path: Path, database_url: str) -> None:
    jane = make_user(runtime, "jane@example.com")
    other = build_runtime(make_settings(tmp_path / "replica", database_url, usage_log_sync=False))
    try:
        with TestClient(create_app(runtime=other)) as replica:
            credential = {"Authorization": f"Bearer {jane.token}"}
            assert replica.get("/api/me", headers=credential).status_code == 200  # the replica now caches it
            assert api.as_(jane.token).get("/api/me").status_code == 200

            assert api.as_(jane.jwt).delete(f"/api/me/api-tokens/{token_id(jane)}").status_code == 204
            revoked = time.monotonic()

            refused = api.as_(jane.token).get("/api/me")  # this replica made the change: it knows at once
            assert refused.status_code == 401 and refused.json()["code"] == "INVALID_API_KEY"
            assert last_stale_start(revoked, lambda: replica.get("/api/me", headers=credential).status_code
                                    == 200) < FreshCache.SECONDS
    finally:
        other.mailer.close()
        other.db.dispose()


def test_a_switched_off_token_is_refused_within_a_second_on_another_replica(
        api: Api, runtime: Runtime, tmp_path: Path, database_url: str) -> None:
    jane = make_user(runtime, "jane@example.com")
    other = build_runtime(make_settings(tmp_path / "replica", database_url, usage_log_sync=False))
    try:
        with TestClient(create_app(runtime=other)) as replica:
            credential = {"Authorization": f"Bearer {jane.token}"}
            assert replica.get("/api/me", headers=credential).status_code == 200
            switched = api.as_(jane.jwt).patch(f"/api/me/api-tokens/{token_id(jane)}", json={"is_active": False})
            assert switched.status_code == 200
            off = time.monotonic()
            assert last_stale_start(off, lambda: replica.get("/api/me", headers=credential).status_code
                                    == 200) < FreshCache.SECONDS
            assert replica.get("/api/me", headers=credential).json()["code"] == "INACTIVE_API_KEY"
    finally:
        other.mailer.close()
        other.db.dispose()
