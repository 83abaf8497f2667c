"""Ledger throughput and read cost.

Prints, for SQLite and PostgreSQL: ledger writes per second on one contended wallet and on many
wallets (8 threads, one transaction per entry, each under the wallet lock), then the cost of
reading a balance and a page of 50 transactions from a wallet holding a million entries (bulk
inserted directly, with correct seq and balance_after).

Run: `python -m bench.ledger` (PostgreSQL admin URL in CLOUDLET_BENCH_POSTGRES_URL, default
postgresql+psycopg://postgres@127.0.0.1:5432/test; skipped with a note when it does not answer).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url

import cloudlet.models  # noqa: F401  # registers every table
from cloudlet.billing import repository
from cloudlet.billing import service as billing
from cloudlet.billing.models import EntryKind, EntryType, LedgerEntry, Wallet
from cloudlet.config import Settings
from cloudlet.kit import migrate
from cloudlet.kit.db import Database
from cloudlet.projects.models import Project, ProjectType

POSTGRES_URL = os.environ.get("CLOUDLET_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
THREADS = 8
WRITES_PER_THREAD = 250
MILLION = 1_000_000


@contextmanager
def sqlite_url() -> Iterator[str]:
    """A fresh SQLite file."""
    with tempfile.TemporaryDirectory() as tmp:
        yield f"sqlite:///{Path(tmp) / 'bench.db'}"


@contextmanager
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards."""
    name = f"cloudlet_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def make_wallets(db: Database, settings: Settings, count: int) -> list[int]:
    """count projects, each with a funded wallet."""
    ids = []
    with db.session() as s:
        for n in range(count):
            project = Project(name=f"bench-{n}", type=ProjectType.TEAM)
            s.add(project)
            s.flush()
            wallet = billing.wallet_of(s, settings, project.id)
            billing.credit(s, wallet.id, 10**12, kind=EntryKind.ADMIN_CREDIT, key="seed")
            ids.append(wallet.id)
    return ids


def writes_per_second(db: Database, wallet_for_thread: Callable[[int], int]) -> float:
    """THREADS threads each posting WRITES_PER_THREAD entries, one transaction each."""
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        wallet_id = wallet_for_thread(n)
        try:
            for i in range(WRITES_PER_THREAD):
                with db.session() as s:
                    billing.post(s, wallet_id, type_=EntryType.DEBIT if i % 2 else EntryType.CREDIT,
                                 kind=EntryKind.HOURLY if i % 2 else EntryKind.TOPUP, amount_cents=1 + i % 7,
                                 key=f"t{n}:{i}")
        except BaseException as exc:  # reported below; a benchmark must not hide a failure
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return THREADS * WRITES_PER_THREAD / elapsed


def bulk_million(db: Database, wallet_id: int) -> None:
    """Append a million entries straight into the table, with running balances."""
    now = datetime.now(UTC)
    with db.session() as s:
        start_seq = (repository.last_entry(s, wallet_id) or LedgerEntry(seq=0, balance_after_cents=0)).seq
        balance = repository.balance(s, wallet_id)
    chunk = 50_000
    for base in range(0, MILLION, chunk):
        rows = []
        for i in range(base, base + chunk):
            amount = 7 if i % 3 else -3
            balance += amount
            rows.append({"wallet_id": wallet_id, "seq": start_seq + i + 1,
                         "type": "credit" if amount > 0 else "debit", "kind": "topup" if amount > 0 else "hourly",
                         "amount_cents": amount, "balance_after_cents": balance, "idempotency_key": f"bulk:{i}",
                         "description": "bulk", "created_at": now})
        with db.session() as s:
            s.execute(insert(LedgerEntry), rows)
    if not db.is_sqlite:
        with db.engine.connect() as conn:
            conn.execute(text("ANALYZE ledger_entries"))
            conn.commit()


def read_cost(runs: int, read: Callable[[], object]) -> tuple[float, float]:
    """Median and p99 of a read, in milliseconds."""
    for _ in range(20):
        read()
    samples = []
    for _ in range(runs):
        before = time.perf_counter_ns()
        read()
        samples.append((time.perf_counter_ns() - before) / 1e6)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


class _Owner:
    """A stand-in actor: the bench reads its own wallet as its default project."""

    def __init__(self, project_id: int) -> None:
        self.project_id = project_id
        self.project_scope = None
        self.user = None


def run(engine_name: str, url: str) -> None:
    """Every figure for one database engine."""
    settings = Settings(_env_file=None, database_url=url, data_dir=Path(tempfile.gettempdir()))  # type: ignore[call-arg]
    db = Database(url, pool_size=THREADS)
    migrate.upgrade(db.engine)
    try:
        one = make_wallets(db, settings, 1)[0]
        many = make_wallets(db, settings, THREADS)
        contended = writes_per_second(db, lambda n: one)
        spread = writes_per_second(db, lambda n: many[n])
        print(f"{engine_name:10} writes/s, one contended wallet ({THREADS} threads): {contended:8.0f}")
        print(f"{engine_name:10} writes/s, {THREADS} wallets ({THREADS} threads):          {spread:8.0f}")
        started = time.perf_counter()
        bulk_million(db, one)
        print(f"{engine_name:10} bulk insert of {MILLION:,} entries: {time.perf_counter() - started:.1f} s")
        with db.session(write=False) as s:
            project_id = s.get(Wallet, one).project_id  # type: ignore[union-attr]
        owner = _Owner(project_id)

        def balance() -> int:
            with db.session(write=False) as s:
                return billing.balance_cents(s, settings, project_id)

        def page() -> object:
            with db.session(write=False) as s:
                return billing.transactions(s, settings, owner, limit=50)  # type: ignore[arg-type]

        def debit_page() -> object:
            with db.session(write=False) as s:
                return billing.transactions(s, settings, owner, type_=EntryType.DEBIT, limit=50)  # type: ignore[arg-type]

        med, p99 = read_cost(500, balance)
        print(f"{engine_name:10} balance read with 1M entries:         median {med:6.3f} ms, p99 {p99:6.3f} ms")
        med, p99 = read_cost(200, page)
        print(f"{engine_name:10} page of 50 transactions (with total): median {med:6.3f} ms, p99 {p99:6.3f} ms")
        med, p99 = read_cost(20, debit_page)
        print(f"{engine_name:10} page of 50 debits (COUNT of the type): median {med:6.3f} ms, p99 {p99:6.3f} ms")
        with db.session(write=False) as s:
            total = s.scalar(text("SELECT SUM(amount_cents) FROM ledger_entries WHERE wallet_id = :w"), {"w": one})
            assert int(total or 0) == repository.balance(s, one), "balance != SUM(amount_cents)"
    finally:
        db.dispose()


def main() -> None:
    """SQLite, then PostgreSQL when it answers."""
    with sqlite_url() as url:
        run("sqlite", url)
    try:
        with postgres_url() as url:
            run("postgresql", url)
    except Exception as exc:
        if "connect" not in str(exc).lower():
            raise
        print(f"postgresql skipped: {exc}")


if __name__ == "__main__":
    main()
