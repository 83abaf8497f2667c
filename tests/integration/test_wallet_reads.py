"""A project's wallets are made with the project, so reading money never writes (issue 9, finding 4.1).

A new account's first reads used to create its wallet inside the GET's read transaction; on SQLite,
reads in parallel with writes then waited on the write lock and ended in 500 "database is locked".
"""

from __future__ import annotations

import importlib.util
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select, text

from cloudlet.billing.models import LedgerEntry, Pool, Wallet
from cloudlet.kit import migrate
from cloudlet.surfaces.deps import Runtime
from tests.conftest import Api
from tests.helpers import PASSWORD, make_user

FIRST_READS = ("/api/me", "/api/wallet", "/api/wallet/balance", "/api/wallet/transactions", "/api/agent/credits",
               "/api/v1/account", "/api/v1/billing", "/v1/billing/org/usage")


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"wallet_trial_credit_cents": 500, "agent_trial_credit_cents": 200, "signup_rate_per_address": "100/minute"}


@contextmanager
def writes_seen(runtime: Runtime) -> Iterator[list[str]]:
    """Every INSERT, UPDATE or DELETE the server's engine runs inside the block."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().split(None, 1)[0].upper() in {"INSERT", "UPDATE", "DELETE"}:
            seen.append(statement)

    event.listen(runtime.db.engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(runtime.db.engine, "before_cursor_execute", note)


def sign_up(api: Api, email: str) -> str:
    """Open an account through the API and sign in; the access JWT."""
    assert api.post("/v1/auth/register", json={"email": email, "password": PASSWORD}).status_code == 201
    reply = api.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert reply.status_code == 200, reply.text
    return str(reply.json()["access_token"])


def test_a_new_accounts_first_reads_write_nothing(api: Api, runtime: Runtime) -> None:
    jwt = sign_up(api, "new@example.com")
    with writes_seen(runtime) as writes:
        for path in FIRST_READS:
            reply = api.as_(jwt).get(path)
            assert reply.status_code == 200, (path, reply.text)
    assert writes == []
    balance = api.as_(jwt).get("/api/wallet/balance").json()
    assert balance["balance_cents"] == 500  # the trial credit came with the project, before any read
    assert api.as_(jwt).get("/api/agent/credits").json()["balance_cents"] == 200


def test_a_new_team_project_has_its_wallets_from_the_start(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    made = api.as_(jane.jwt).post("/v1/organizations", json={"name": "Acme"})
    assert made.status_code == 201, made.text
    with runtime.db.session(write=False) as session:
        pools = set(session.scalars(select(Wallet.pool).where(Wallet.project_id == int(made.json()["id"]))))
    assert pools == {Pool.MAIN, Pool.AGENT}


def test_the_migration_gives_older_projects_their_wallets_once(runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    with runtime.db.engine.begin() as conn:  # a project from before wallets came with projects
        conn.execute(text("DELETE FROM ledger_entries"))
        conn.execute(text("DELETE FROM wallets"))
    path = migrate.ROOT / "migrations" / "versions" / "0011_wallets_for_every_project.py"
    spec = importlib.util.spec_from_file_location("wallets_migration", Path(path))
    assert spec is not None and spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    with runtime.db.engine.begin() as conn:
        assert migration.backfill(conn, runtime.settings) == 2
    with runtime.db.engine.begin() as conn:
        assert migration.backfill(conn, runtime.settings) == 0
    with runtime.db.session(write=False) as session:
        wallets = session.scalars(select(Wallet).where(Wallet.project_id == jane.project_id)).all()
        assert {w.pool for w in wallets} == {Pool.MAIN, Pool.AGENT}
        entries = session.scalars(select(LedgerEntry).order_by(LedgerEntry.id)).all()
        assert [(e.amount_cents, e.balance_after_cents, e.seq) for e in entries] == [(500, 500, 1), (200, 200, 1)]


@pytest.mark.engines("sqlite")
def test_first_reads_in_parallel_with_writes_all_answer(api: Api, runtime: Runtime) -> None:
    # New accounts read their money for the first time while others sign up and make projects:
    # every request answers (no 500 "database is locked") and none waits for long.
    readers = [sign_up(api, f"reader{i}@example.com") for i in range(6)]
    statuses: list[tuple[str, int, float]] = []
    lock = threading.Lock()

    def read(jwt: str) -> None:
        for path in FIRST_READS:
            started = time.monotonic()
            code = api.as_(jwt).get(path).status_code
            with lock:
                statuses.append((path, code, time.monotonic() - started))

    def write(n: int) -> None:
        for i in range(3):
            started = time.monotonic()
            code = api.post("/v1/auth/register", json={"email": f"w{n}-{i}@example.com", "password": PASSWORD}
                            ).status_code
            with lock:
                statuses.append(("register", code, time.monotonic() - started))

    threads = [threading.Thread(target=read, args=(jwt,)) for jwt in readers]
    threads += [threading.Thread(target=write, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert len(statuses) == len(readers) * len(FIRST_READS) + 9
    assert [s for s in statuses if s[1] not in (200, 201)] == []
    assert max(elapsed for _, _, elapsed in statuses) < 10
