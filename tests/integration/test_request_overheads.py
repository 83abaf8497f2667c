"""What keeps an authenticated GET cheap: one lookup per token however many requests miss the credential cache
at once, a usage writer that gathers lines without waking per request, a frozen heap once the app has started,
and an /api/me that answers a missing wallet or a deleted user as the services did."""

from __future__ import annotations

import asyncio
import gc
from concurrent.futures import Future

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, delete, select
from sqlalchemy.orm import Session

from cloudlet.app import create_app
from cloudlet.auth import queries as me_queries
from cloudlet.auth.models import User
from cloudlet.billing.models import Wallet
from cloudlet.kit import clock
from cloudlet.kit.db import insert_rows
from cloudlet.surfaces import deps
from cloudlet.surfaces.deps import Runtime
from cloudlet.surfaces.middleware import BookkeepingWriter, RequestRecord, _Actor
from cloudlet.tokens.models import TokenUsage
from tests.conftest import Api
from tests.helpers import make_user, mint_token


def at_once(runtime: Runtime, token: str, n: int) -> list[httpx.Response]:
    """n GET /api/me with the token, all in flight together on one event loop, against a new app."""
    app = create_app(runtime=runtime)

    async def many() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver",
                                     headers={"Authorization": f"Bearer {token}"}) as client:
            return list(await asyncio.gather(*(client.get("/api/me") for _ in range(n))))

    return asyncio.run(many())


def test_concurrent_requests_with_an_uncached_token_look_it_up_once(runtime: Runtime,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    jane = make_user(runtime, "jane@example.com")
    token = mint_token(runtime, jane, "*")
    lookups: list[str | None] = []
    real = deps.authenticate

    def counted(*args: object, **kwargs: object) -> object:
        lookups.append(str(args[2]))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(deps, "authenticate", counted)

    assert [r.status_code for r in at_once(runtime, token, 12)] == [200] * 12
    assert lookups == [token]


def test_concurrent_requests_that_miss_the_kept_answer_read_it_once(runtime: Runtime,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    jane = make_user(runtime, "jane@example.com")
    token = mint_token(runtime, jane, "*")
    reads: list[int] = []
    real = me_queries.me

    def counted(connection: Connection, user_id: int, fence: int | None) -> me_queries.MeView:
        reads.append(user_id)
        return real(connection, user_id, fence)

    monkeypatch.setattr(me_queries, "me", counted)

    assert [r.json()["user"]["email"] for r in at_once(runtime, token, 12)] == ["jane@example.com"] * 12
    assert reads == [jane.user.id]


def test_concurrent_requests_with_a_wrong_token_are_each_refused(runtime: Runtime) -> None:
    assert [r.json()["code"] for r in at_once(runtime, "cl_unknown0123456789", 5)] == ["INVALID_API_KEY"] * 5


def _record(n: int, method: str = "GET") -> RequestRecord:
    return RequestRecord(method=method, path=f"/api/x/{n}", ip="127.0.0.1", status=200, elapsed_ms=1,
                         request_id=f"r{n}", target=None, actor=_Actor(None, None, None), reread_email=False)


def test_gathered_records_are_written_with_the_next_urgent_one(runtime: Runtime) -> None:
    writer = BookkeepingWriter(runtime.db, flush_seconds=60)
    waiting: list[Future[None]] = [writer.submit(_record(n)) for n in range(5)]
    urgent = writer.submit(_record(5), urgent=True)
    urgent.result(timeout=10)  # long before the 60 s batch would be due
    assert all(f.done() for f in waiting)


def test_a_batch_is_written_when_it_is_due(runtime: Runtime) -> None:
    writer = BookkeepingWriter(runtime.db, flush_seconds=0.2)
    written = writer.submit(_record(1))
    written.result(timeout=10)


def test_the_heap_is_frozen_once_the_app_has_started(runtime: Runtime) -> None:
    with TestClient(create_app(runtime=runtime)) as client:
        assert client.get("/health").status_code == 200
        assert gc.get_freeze_count() > 0


def test_a_cached_token_opens_no_session_and_a_session_no_endpoint_took_is_closed_after_the_answer(
        api: Api, runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    jane = make_user(runtime, "jane@example.com")
    opened: list[Session] = []
    open_session = runtime.db.open

    def noting_open(*, write: bool = True) -> Session:
        opened.append(open_session(write=write))
        return opened[-1]

    monkeypatch.setattr(runtime.db, "open", noting_open)
    client = api.as_(jane.token)
    assert client.get("/api/me").status_code == 200
    assert len(opened) == 1  # the token was looked up through the request's session
    assert client.get("/api/me").status_code == 200
    assert client.get("/v1/permissions").status_code == 200
    assert len(opened) == 1  # the token came from the cache, and neither endpoint asked for a session

    # a signed-in user is authenticated through the request's session; this endpoint takes no DbSession
    # and reads the caller's row through that session, which is ended after the answer
    reply = api.as_(jane.jwt).get("/v1/auth/mfa/status")
    assert reply.status_code == 200 and reply.json() == {"enabled": False}
    assert len(opened) == 2
    assert runtime.db.engine.pool.checkedout() == 0
    assert opened[-1].get_transaction() is None  # rolled back and closed, not left open


def test_me_without_a_default_wallet_is_a_404(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    token = jane.token
    with runtime.db.session() as session:
        session.execute(delete(Wallet).where(Wallet.project_id == jane.project_id))
    reply = api.as_(token).get("/api/me")
    assert reply.status_code == 404
    assert reply.json()["code"] == "NOT_FOUND"


def test_me_without_a_personal_project_is_a_404(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    with runtime.db.session() as session:
        user = session.get(User, jane.id)
        assert user is not None
        user.personal_project_id = None
    reply = api.as_(jane.token).get("/api/me")
    assert reply.status_code == 404
    assert reply.json()["message"] == "Project not found."


def test_appended_rows_read_back_as_written_whatever_their_number(runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    token_id = int(mint_token(runtime, jane, "*").split("|")[0])
    at = clock.now()
    rows = [{"token_id": token_id, "endpoint": f"/api/é/{n}'\"", "method": "GET",
             "ip_address": None if n % 2 else "::1", "response_status": 200 + n, "response_time_ms": n,
             "created_at": at} for n in range(1200)]
    with runtime.db.session() as session:
        insert_rows(session, TokenUsage, rows)
    with runtime.db.session(write=False) as session:
        stored = session.scalars(select(TokenUsage).order_by(TokenUsage.id)).all()
    assert [{key: getattr(line, key) for key in rows[0]} for line in stored] == rows
