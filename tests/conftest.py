"""Shared fixtures: a Cloudlet app on SQLite and on PostgreSQL, and clients that act as users."""

from __future__ import annotations

import email
import functools
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient
from hypothesis import settings as hypothesis_settings
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import NullPool

from cloudlet.app import build_runtime, create_app
from cloudlet.config import Settings
from cloudlet.kit import migrate
from cloudlet.surfaces.deps import Runtime
from cloudlet.worker import SYSTEM_DATABASE_SUFFIX
from tests.helpers import free_port

pytest_plugins = ["tests.cloud"]  # the `cloud` fixture of instance tests

POSTGRES_URL = os.environ.get("CLOUDLET_TEST_POSTGRES_URL", "")
REDIS_URL = os.environ.get("CLOUDLET_TEST_REDIS_URL", "")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
# The servers tests start run no edge (nginx on ports 80 and 443) unless a test asks for one on ports of its own
os.environ["CLOUDLET_EDGE_SERVE"] = "false"
PASSWORD = "correct-horse-battery-9"

# Property tests assert behaviour, not time: on a busy two-core machine an example can take longer than
# Hypothesis's default 200 ms deadline, which then reports a flaky failure of a correct property.
hypothesis_settings.register_profile("cloudlet", deadline=None)
hypothesis_settings.load_profile("cloudlet")


def _postgres_reachable(url: str) -> str | None:
    try:
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The admin URL of the PostgreSQL the integration tests use (skips, or fails in CI, without one)."""
    if not POSTGRES_URL:
        message = ("PostgreSQL tests are off: set CLOUDLET_TEST_POSTGRES_URL, e.g. "
                   "postgresql+psycopg://postgres@127.0.0.1:5432/test (scripts/test.sh does)")
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    problem = _postgres_reachable(POSTGRES_URL)
    if problem:
        if IN_CI:
            pytest.fail(f"PostgreSQL at {POSTGRES_URL} is required in CI: {problem}")
        pytest.skip(f"PostgreSQL at {POSTGRES_URL} is not reachable ({problem}); start it to run these tests")
    return POSTGRES_URL


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database of the engine the test is parametrised with: empty, or for a test that asks for the
    runtime, a copy of the migrated template (on PostgreSQL, one this process emptied after an earlier test
    when it has one)."""
    with_schema = "runtime" in request.fixturenames
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'cloudlet.db'}"
        if with_schema:
            shutil.copyfile(request.getfixturevalue("schema_templates").sqlite_file, tmp_path / "cloudlet.db")
        yield url
        return
    if not with_schema:
        admin_url = request.getfixturevalue("postgres_server")
        name = f"cloudlet_t_{uuid.uuid4().hex[:12]}"
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                drop_pair(conn, name)
            admin.dispose()
        return
    copies: PostgresCopies = request.getfixturevalue("postgres_copies")
    name = copies.take()
    try:
        yield make_url(copies.admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        copies.give_back(name)


def drop_pair(conn: Connection, name: str) -> None:
    """Drop a test database and the one DBOS makes beside it when a worker runs on it (cloudlet.worker)."""
    for database in (name, f"{name}{SYSTEM_DATABASE_SUFFIX}"):
        conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))


ENGINES = ("sqlite", "postgresql")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that needs a database runs on SQLite and on PostgreSQL.

    `@pytest.mark.engines("sqlite")` (on a test, or as a module's pytestmark) narrows that: the e2e tests whose
    real guests would only show again what the integration tests already show on both engines.
    """
    if "database_url" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("engines")
        engines = list(marker.args) if marker is not None else list(ENGINES)
        assert engines and set(engines) <= set(ENGINES), engines
        metafunc.parametrize("database_url", engines, indirect=True, ids=engines)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Order the test files so that the suite's processes (xdist, whole files each) end together.

    The files with most tests come first, and the `long` ones (a few tests that take minutes: real guests,
    the schemathesis probe), longest first, every other place from the second: each starts early beside a
    file of many short tests instead of being taken last by a process that then runs it alone while the
    others have ended. scripts/test.sh passes `--no-loadscope-reorder` so that xdist keeps this order.
    """
    def seconds(tests: list[pytest.Item]) -> float:
        marker = tests[0].get_closest_marker("long")
        return 0.0 if marker is None else float(marker.kwargs["seconds"])

    files: dict[Path, list[pytest.Item]] = {}
    for item in items:
        files.setdefault(item.path, []).append(item)
    long = sorted((tests for tests in files.values() if seconds(tests)), key=lambda tests: -seconds(tests))
    rest = sorted((tests for tests in files.values() if not seconds(tests)), key=lambda tests: -len(tests))
    for place, tests in enumerate(long):
        rest.insert(min(2 * place + 1, len(rest)), tests)
    items[:] = [item for tests in rest for item in tests]


def make_settings(tmp_path: Path, database_url: str, **overrides: Any) -> Settings:
    """Settings for a test server: cheap password hashing, a private data directory."""
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "database_url": database_url,
        "secret_key": "test-secret-key-with-enough-length-0123456789",
        "argon2_time_cost": 1,
        "argon2_memory_kib": 1024,
        "public_url": "http://cloudlet.test",
        "usage_log_sync": True,
        # the guests' firewall table of this test's control plane: many share this machine's kernel
        "shield_table": f"cloudlet_t{uuid.uuid4().hex[:10]}",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module to change the server's settings."""
    return {}


@dataclass(frozen=True)
class SchemaTemplates:
    """Databases migrated once per test session, which each test's fresh database is copied from.

    Migrating from scratch costs seconds per test on PostgreSQL (and DBOS's own system database as much
    again), so a test's database starts as a copy: a file copy on SQLite, CREATE DATABASE ... TEMPLATE on
    PostgreSQL. The runtime fixture still runs the migrations, which then find nothing to do. The
    migration tests themselves start from the empty database that `database_url` gives.
    """

    sqlite_file: Path
    postgres_name: str | None  # the app database; its DBOS system database has the usual suffix


@pytest.fixture(scope="session")
def schema_templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SchemaTemplates]:
    """The session's migrated SQLite file, and a migrated PostgreSQL pair when PostgreSQL is reachable."""
    from cloudlet.worker import Worker

    tmp = tmp_path_factory.mktemp("schema-template")
    sqlite_file = tmp / "cloudlet.db"
    sqlite_runtime = build_runtime(make_settings(tmp, f"sqlite:///{sqlite_file}"))
    migrate.upgrade(sqlite_runtime.db.engine)
    sqlite_runtime.mailer.close()
    sqlite_runtime.db.dispose()
    if not POSTGRES_URL or _postgres_reachable(POSTGRES_URL):
        yield SchemaTemplates(sqlite_file, None)
        return
    name = f"cloudlet_tpl_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
        pg_runtime = build_runtime(make_settings(tmp, url))
        migrate.upgrade(pg_runtime.db.engine)
        worker = Worker(pg_runtime.settings, pg_runtime.db)  # no queues, no schedules: DBOS's tables only
        worker.start()
        worker.stop(grace_seconds=0)
        pg_runtime.mailer.close()
        pg_runtime.db.dispose()
        yield SchemaTemplates(sqlite_file, name)
    finally:
        with admin.connect() as conn:
            for database in (name, f"{name}{SYSTEM_DATABASE_SUFFIX}"):
                conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()


# Rows the migrations leave in a template; everything else a test writes. DBOS's application_versions is
# emptied too: a launch adds its version, and a newer one left by an earlier test (a process that imported
# more workflows computes another version) would make this test's worker not the latest, and its schedules
# would not run.
TEMPLATE_ROWS = {"alembic_version", "dbos_migrations"}


@dataclass
class PostgresCopies:
    """This process's copies of the migrated PostgreSQL template (with their DBOS system databases).

    Creating and dropping a pair costs about 0.7 s on this machine, emptying one about 0.05 s; so a test's
    copy is emptied when it ends (every other connection to it cut first, every table but the template's
    own rows deleted, every sequence restarted) and handed to the next test of the process. A copy that
    cannot be emptied cleanly, or whose migrations moved, is dropped instead.
    """

    admin_url: str
    template: str
    engine: Engine
    ready: list[str] = field(default_factory=list)

    def take(self) -> str:
        """The name of an untouched copy of the template."""
        if self.ready:
            return self.ready.pop()
        name = f"cloudlet_t_{uuid.uuid4().hex[:12]}"
        with self.engine.connect() as conn:
            for suffix in ("", SYSTEM_DATABASE_SUFFIX):
                conn.execute(text(f'CREATE DATABASE "{name}{suffix}" TEMPLATE "{self.template}{suffix}"'))
        return name

    def give_back(self, name: str) -> None:
        """Empty a copy a test has used for the next one, or drop it."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                  "WHERE datname IN (:app, :system) AND pid <> pg_backend_pid()"),
                             {"app": name, "system": f"{name}{SYSTEM_DATABASE_SUFFIX}"})
            for suffix in ("", SYSTEM_DATABASE_SUFFIX):
                self._empty(f"{name}{suffix}", f"{self.template}{suffix}")
        except Exception:  # whatever went wrong, a fresh copy replaces it
            with self.engine.connect() as conn:
                drop_pair(conn, name)
            return
        self.ready.append(name)

    def _empty(self, database: str, template: str) -> None:
        engine = create_engine(make_url(self.admin_url).set(database=database), poolclass=NullPool)
        try:
            with engine.begin() as conn:
                conn.execute(text("SET LOCAL lock_timeout = '5s'"))
                conn.execute(text("SET LOCAL session_replication_role = replica"))  # no foreign-key order
                if _migrations(conn) != _migrations_of(self.engine, template):
                    raise RuntimeError(f"{database} is not at the template's migrations")
                tables = conn.execute(text("SELECT schemaname, tablename FROM pg_tables "
                                           "WHERE schemaname NOT IN ('pg_catalog', 'information_schema')")).all()
                for schema, table in tables:  # names from the catalogue, not from a test
                    if table not in TEMPLATE_ROWS:
                        conn.execute(text(f'DELETE FROM "{schema}"."{table}"'))  # noqa: S608
                for schema, sequence in conn.execute(text("SELECT schemaname, sequencename FROM pg_sequences")).all():
                    conn.execute(text(f'ALTER SEQUENCE "{schema}"."{sequence}" RESTART'))
        finally:
            engine.dispose()

    def close(self) -> None:
        """Drop every copy left."""
        with self.engine.connect() as conn:
            for name in self.ready:
                drop_pair(conn, name)
        self.ready.clear()
        self.engine.dispose()


def _migrations(conn: Connection) -> set[str]:
    """The migration marks of a database: Alembic's revisions, or DBOS's version in its system database."""
    for table in ("public.alembic_version", "dbos.dbos_migrations"):
        if conn.execute(text("SELECT to_regclass(:t)"), {"t": table}).scalar() is not None:
            return {str(row[0]) for row in conn.execute(text(f"SELECT * FROM {table}"))}  # noqa: S608
    return set()


@functools.cache
def _migrations_of(admin: Engine, template: str) -> frozenset[str]:
    engine = create_engine(admin.url.set(database=template), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return frozenset(_migrations(conn))
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def postgres_copies(postgres_server: str, schema_templates: SchemaTemplates) -> Iterator[PostgresCopies]:
    """This process's reusable copies of the migrated PostgreSQL template."""
    assert schema_templates.postgres_name is not None, "PostgreSQL was reachable for the test but not for the template"
    copies = PostgresCopies(postgres_server, schema_templates.postgres_name,
                            create_engine(postgres_server, isolation_level="AUTOCOMMIT"))
    try:
        yield copies
    finally:
        copies.close()


@pytest.fixture
def runtime(tmp_path: Path, database_url: str, settings_overrides: dict[str, Any]) -> Iterator[Runtime]:
    """A migrated database (a copy of the session's template, made by database_url) and the runtime around it.

    No migration runs here: the template was migrated by this session, and a reused PostgreSQL copy is checked
    against it (PostgresCopies); a no-op upgrade would still cost Alembic's reading of every script."""
    settings = make_settings(tmp_path, database_url, **settings_overrides)
    rt = build_runtime(settings)
    try:
        yield rt
    finally:
        rt.mailer.close()
        rt.db.dispose()
        if shutil.which("nft"):  # the firewall table its workers or server processes may have written
            subprocess.run(["nft", "delete", "table", "inet", settings.shield_table], capture_output=True,
                           timeout=30, check=False)


@dataclass
class Api:
    """A test client that can act as different users."""

    client: TestClient

    def as_(self, credential: str | None, *, header: str = "authorization") -> httpx.Client:
        """A client sending this credential (API token or access JWT) on every request."""
        headers: dict[str, str] = {}
        if credential is not None:
            headers = {"Authorization": f"Bearer {credential}"} if header == "authorization" else {
                "X-API-Key": credential}
        return _Scoped(self.client, headers)  # type: ignore[return-value]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


class _Scoped:
    def __init__(self, client: TestClient, headers: dict[str, str]) -> None:
        self.client = client
        self.headers = headers

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return self.client.request(method, url, headers=headers, **kwargs)

    def get(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("GET", url, **kw)

    def post(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("POST", url, **kw)

    def put(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("PUT", url, **kw)

    def patch(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("PATCH", url, **kw)

    def delete(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("DELETE", url, **kw)


@pytest.fixture
def api(runtime: Runtime) -> Iterator[Api]:
    """A client of a Cloudlet server on a fresh database."""
    with TestClient(create_app(runtime=runtime), raise_server_exceptions=False) as client:
        yield Api(client)


class Inbox:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps every message it receives."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802  # aiosmtpd's hook
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"

    @property
    def settings(self) -> dict[str, Any]:
        """The settings that send Cloudlet's mail here."""
        return {"smtp_host": "127.0.0.1", "smtp_port": self.port}


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    """An SMTP server for the test; point the server at it with settings_overrides -> inbox.settings."""
    handler = Inbox(free_port())
    controller = Controller(handler, hostname="127.0.0.1", port=handler.port)
    controller.start()
    try:
        yield handler
    finally:
        controller.stop()
