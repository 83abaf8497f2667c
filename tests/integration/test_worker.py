"""The durable-workflow worker (DBOS) in this process: the billing schedule renews and charges, once.

DBOS is a process-wide singleton, but it can be destroyed and launched again, so every test here
launches its own worker on its own fresh database (SQLite and PostgreSQL) and stops it at the end.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from dbos import DBOS, DBOSClient
from dbos import error as dbos_errors
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from cloudlet.app import create_app, create_worker
from cloudlet.billing import service as billing
from cloudlet.billing import workflows as billing_workflows
from cloudlet.billing.models import EntryKind
from cloudlet.billing.schemas import SubscriptionCreate
from cloudlet.kit import clock
from cloudlet.surfaces.deps import Runtime
from cloudlet.worker import Worker, current, system_database_url
from tests.conftest import POSTGRES_URL, make_settings
from tests.helpers import Person, make_user, mint_token

T = TypeVar("T")
WAIT_SECONDS = 45  # a bound for waits on workers, generous for a machine shared with TCG guests


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """A billing run every second, so a test sees several ticks in a few seconds."""
    return {"billing_schedule": "* * * * * *"}


@pytest.fixture
def worker(runtime: Runtime) -> Iterator[Worker]:
    """A worker on the test's database, not yet started; stopped after the test if still running.

    (tests/conftest.py drops the PostgreSQL system database DBOS creates beside the test's.)
    """
    made = create_worker(runtime=runtime)
    try:
        yield made
    finally:
        made.stop(grace_seconds=0)


def wait_for(probe: Callable[[], T | None], what: str, seconds: float = WAIT_SECONDS) -> T:
    """Poll until probe returns something truthy; fail with `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {seconds} s waiting for {what}")
        time.sleep(0.2)


def fund(runtime: Runtime, person: Person, cents: int) -> None:
    with runtime.db.session() as s:
        wallet_id = billing.wallet_of(s, runtime.settings, person.project_id).id
        billing.credit(s, wallet_id, cents, kind=EntryKind.ADMIN_CREDIT, key="fund")


def subscribe(runtime: Runtime, person: Person, *, cycle: str, started_ago: timedelta, ref: str) -> None:
    """A subscription started `started_ago`, so its next cycle (or hours) are already due."""
    with runtime.db.session() as s:
        billing.start_subscription(s, runtime.settings, SubscriptionCreate(
            project_id=person.project_id, reference=ref, plan_id=1, cycle=cycle, price_cents=3000),
            now=clock.now() - started_ago)


def entries(client: Any, token: str, kind: str) -> list[dict[str, Any]]:
    """The wallet's ledger entries of one kind, read through the primary API."""
    reply = client.get("/api/wallet/transactions", headers={"Authorization": f"Bearer {token}"},
                       params={"limit": 200})
    assert reply.status_code == 200, reply.text
    return [e for e in reply.json()["data"] if e["kind"] == kind]


def finished_runs(executor_id: str | None = None) -> int:
    """How many billing runs DBOS recorded as finished (by one executor, if named)."""
    runs = DBOS.list_workflows(schedule_name=billing_workflows.SCHEDULE_NAME, status="SUCCESS",
                               executor_id=executor_id, load_input=False, load_output=False)
    return len(runs)


def test_the_worker_embedded_in_the_api_renews_a_due_subscription_exactly_once(
        runtime: Runtime, worker: Worker) -> None:
    person = make_user(runtime, "due@example.com")
    token = mint_token(runtime, person, "wallet:read")
    fund(runtime, person, 10_000)
    # Started 40 days ago: one monthly renewal is due, the next one is weeks away.
    subscribe(runtime, person, cycle="monthly", started_ago=timedelta(days=40), ref="inst-due")
    with TestClient(create_app(runtime=runtime, worker=worker)) as client:  # the lifespan starts the worker
        assert current() is worker
        renewed = wait_for(lambda: entries(client, token, "renewal"), "the renewal in the ledger")
        ran = finished_runs()
        wait_for(lambda: finished_runs() >= ran + 3, "three more billing runs after the renewal")
        assert entries(client, token, "renewal") == renewed  # the later ticks charged nothing again
    assert len(renewed) == 1 and renewed[0]["amount_cents"] == -3000
    assert renewed[0]["reference"] == "inst-due"
    with runtime.db.session(write=False) as s:
        assert billing.balance_cents(s, runtime.settings, person.project_id) == 10_000 - 3000 - 3000
    with pytest.raises(RuntimeError, match="no worker"):
        current()  # the lifespan stopped it with the app


def test_a_worker_charges_started_hours_and_a_new_worker_launches_after_it_stopped(
        runtime: Runtime, worker: Worker) -> None:
    person = make_user(runtime, "hours@example.com")
    token = mint_token(runtime, person, "wallet:read")
    fund(runtime, person, 10_000)
    # The first hour was paid at the start; the second and third hours have started since.
    subscribe(runtime, person, cycle="hourly", started_ago=timedelta(hours=2, minutes=30), ref="inst-hourly")
    api = TestClient(create_app(runtime=runtime))
    with worker:
        hours = wait_for(lambda: len(entries(api, token, "hourly")) == 2 and entries(api, token, "hourly"),
                         "two hourly charges")
        with pytest.raises(RuntimeError, match="already running"):
            create_worker(runtime=runtime).start()  # DBOS is one per process
        assert current() is worker
    first_executor = worker.executor_id
    again = create_worker(runtime=runtime)
    with again:
        # The slot the first worker released is taken again: same executor, so it would recover its work.
        assert again.executor_id == first_executor
        ran = finished_runs()
        wait_for(lambda: finished_runs() >= ran + 2, "two billing runs of the relaunched worker")
    assert entries(api, token, "hourly") == hours


def test_the_system_database_lives_beside_the_app_database(runtime: Runtime, worker: Worker,
                                                           database_url: str) -> None:
    url = make_url(system_database_url(runtime.settings))
    if database_url.startswith("sqlite"):
        assert url.database == str(runtime.settings.data_dir / "dbos_sys.sqlite")
    else:
        assert url.database == f"{make_url(database_url).database}_dbos_sys"
        assert url.host == make_url(database_url).host
    runtime.settings.worker_id = "node-7"
    with worker:  # DBOS creates the database on first launch
        assert worker.executor_id == "node-7-0"  # the host's name and the first free slot on it
        if url.get_backend_name() == "sqlite":
            assert Path(str(url.database)).is_file()
        else:
            admin = create_engine(POSTGRES_URL)
            with admin.connect() as conn:
                assert conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                                    {"n": url.database}).scalar() == 1
            admin.dispose()


def test_an_explicit_worker_database_is_used(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, "postgresql+psycopg://app:secret@db.internal:5432/cloudlet")
    assert system_database_url(settings) == "postgresql+psycopg://app:secret@db.internal:5432/cloudlet_dbos_sys"
    settings = make_settings(tmp_path, "sqlite:///elsewhere/app.db",
                             worker_database_url="postgresql+psycopg://dbos@db.internal/workflows")
    assert system_database_url(settings) == "postgresql+psycopg://dbos@db.internal/workflows"
    assert settings.billing_schedule == "* * * * *"  # every minute unless told otherwise


def test_a_bad_schedule_fails_the_start_and_leaves_dbos_free_to_launch_again(runtime: Runtime) -> None:
    runtime.settings.billing_schedule = "every minute"
    with pytest.raises(dbos_errors.DBOSException, match="Invalid cron schedule"):
        create_worker(runtime=runtime).start()
    with pytest.raises(RuntimeError, match="no worker"):
        current()
    runtime.settings.billing_schedule = "* * * * *"
    with create_worker(runtime=runtime) as fixed:
        assert current() is fixed


class Held:
    """What the held workflow below waits for and says."""

    entered = threading.Event()
    release = threading.Event()


@DBOS.workflow(name="tests.worker.held")
def held() -> str:
    """A workflow that runs until the test releases it."""
    Held.entered.set()
    Held.release.wait(WAIT_SECONDS)
    return "released"


def test_a_stopping_worker_lets_a_running_workflow_end_within_its_grace(runtime: Runtime, worker: Worker) -> None:
    Held.entered.clear()
    Held.release.clear()
    worker.start()
    handle = DBOS.start_workflow(held)
    assert Held.entered.wait(WAIT_SECONDS)
    stopped = threading.Event()
    stopping = threading.Thread(target=lambda: (worker.stop(grace_seconds=WAIT_SECONDS), stopped.set()))
    stopping.start()
    try:
        assert not stopped.wait(0.5), "the worker stopped while its workflow still ran"
    finally:
        Held.release.set()
    assert stopped.wait(WAIT_SECONDS)
    stopping.join()
    client = DBOSClient(system_database_url=system_database_url(runtime.settings))
    try:
        status = client.retrieve_workflow(handle.workflow_id).get_status()
    finally:
        client.destroy()
    assert (status.status, status.output) == ("SUCCESS", "released")  # it ended, and was not cut short
