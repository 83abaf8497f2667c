"""Many processes debit and credit one wallet at once, some killed mid-transaction with SIGKILL:
the ledger still adds up, no key is used twice and the balance never goes below zero."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
from typing import Any

import pytest
from sqlalchemy import func, select

from cloudlet.billing import service as billing
from cloudlet.billing.models import EntryKind, EntryType, LedgerEntry
from cloudlet.kit.db import Database
from cloudlet.kit.errors import PaymentRequired
from cloudlet.surfaces.deps import Runtime
from tests.helpers import make_user

WORKERS = 8
VICTIMS = 3
ROUNDS = 150

pytestmark = pytest.mark.long(seconds=45)


def hammer(url: str, wallet_id: int, worker: int, started: Any, forever: bool) -> None:
    """One worker: random credits and debits, some under keys every worker shares, some slow to commit.
    A worker meant to be killed runs until it is."""
    rng = random.Random(worker)
    db = Database(url, pool_size=2)
    started.set()
    i = 0
    while forever or i < ROUNDS:
        i += 1
        credit = rng.random() < 0.45
        shared = rng.random() < 0.2
        key = f"shared:{i % 25}:{'c' if credit else 'd'}" if shared else f"w{worker}:{i}"
        try:
            with db.session() as session:
                billing.post(session, wallet_id, type_=EntryType.CREDIT if credit else EntryType.DEBIT,
                             kind=EntryKind.TOPUP if credit else EntryKind.HOURLY,
                             amount_cents=rng.randint(1, 100) if credit else rng.randint(1, 150), key=key)
                if rng.random() < 0.3:
                    time.sleep(rng.random() / 50)  # hold the lock: a SIGKILL now lands mid-transaction
        except PaymentRequired:
            continue
    db.dispose()


def test_parallel_debits_and_credits_with_killed_workers_keep_the_ledger_whole(runtime: Runtime) -> None:
    person = make_user(runtime, "contended@example.com")
    with runtime.db.session() as s:
        wallet_id = billing.wallet_of(s, runtime.settings, person.project_id).id
        billing.credit(s, wallet_id, 2000, kind=EntryKind.ADMIN_CREDIT, key="seed")
    url = runtime.db.engine.url.render_as_string(hide_password=False)
    ctx = multiprocessing.get_context("spawn")
    started = [ctx.Event() for _ in range(WORKERS)]
    procs = [ctx.Process(target=hammer, args=(url, wallet_id, n, started[n], n < VICTIMS)) for n in range(WORKERS)]
    for p in procs:
        p.start()
    for e in started:
        assert e.wait(60), "a worker did not start"
    for p in procs[:VICTIMS]:
        time.sleep(0.3)
        assert p.pid is not None
        os.kill(p.pid, signal.SIGKILL)
    for p in procs:
        p.join(180)
        assert not p.is_alive(), "a worker hung"
    assert [p.exitcode for p in procs[:VICTIMS]] == [-signal.SIGKILL] * VICTIMS
    assert all(p.exitcode == 0 for p in procs[VICTIMS:])

    with runtime.db.session(write=False) as s:
        rows = list(s.scalars(select(LedgerEntry).where(LedgerEntry.wallet_id == wallet_id).order_by(LedgerEntry.seq)))
        duplicates = list(s.execute(select(LedgerEntry.idempotency_key).where(LedgerEntry.wallet_id == wallet_id)
                                    .group_by(LedgerEntry.idempotency_key).having(func.count() > 1)))
        balance = billing.balance_cents(s, runtime.settings, person.project_id)
    assert len(rows) > ROUNDS
    assert duplicates == []
    assert [r.seq for r in rows] == list(range(1, len(rows) + 1))
    running = 0
    for row in rows:
        running += row.amount_cents
        assert row.balance_after_cents == running
        assert running >= 0
    assert balance == running == sum(r.amount_cents for r in rows)
