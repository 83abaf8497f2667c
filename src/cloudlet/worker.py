"""The durable-workflow worker: the one place DBOS is configured, launched and shut down.

DBOS keeps the state of every workflow and step in its system database (SQLite beside ours by
default, or a PostgreSQL database of its own next to the app's), runs scheduled workflows and
queues, and recovers this process's unfinished workflows when it starts again. Every process that
starts a Worker is an executor: `cloudlet serve` embeds one in each API process, `cloudlet worker`
runs one alone, and any number of them may share the system database. A cron tick gets a workflow
id made of the schedule's name and the tick's time, so a tick runs once however many executors see it.

DBOS is a process-wide singleton, so one Worker at a time may run in a process; workflows reach the
database, settings and node drivers of the running one through `current()`.
"""

from __future__ import annotations

import fcntl
import itertools
import socket
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import anyio
import structlog
from dbos import DBOS, DBOSConfig, ScheduleInput
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from cloudlet.config import Settings
from cloudlet.kit.db import Database
from cloudlet.nodes.service import Drivers

log = structlog.get_logger(__name__)

APP_NAME = "cloudlet"
SYSTEM_DATABASE_SUFFIX = "_dbos_sys"  # DBOS's own convention for a system database beside an app's
SHUTDOWN_GRACE_SECONDS = 5  # a workflow still running after this is recovered by the next start instead
NOTIFICATION_POLL_SECONDS = 0.1
SHUTDOWN_POLL_SECONDS = 0.05  # how often a stopping worker looks whether its workflows have ended

# What DBOS calls on each tick: the tick's time and the schedule's context (unused here).
ScheduledWorkflow = Callable[[datetime, Any], None]

_lock = threading.Lock()
_running: Worker | None = None


@dataclass(frozen=True)
class QueueSpec:
    """A DBOS queue the worker declares; global_concurrency caps its runs across every executor."""

    name: str
    global_concurrency: int | None = None
    polling_interval_seconds: float = 1.0  # how often each executor looks for new work in it


@dataclass(frozen=True)
class Schedule:
    """A workflow DBOS starts on a cron schedule (5 fields, or 6 with seconds first)."""

    name: str
    workflow: ScheduledWorkflow
    cron: str
    queue: str | None = None


def system_database_url(settings: Settings) -> str:
    """Where DBOS keeps workflow state: CLOUDLET_WORKER_DATABASE_URL, else beside the app's database.

    SQLite gets a file in the data directory; PostgreSQL gets `<app database>_dbos_sys` on the same
    server, which DBOS creates on first launch (the app's role needs CREATEDB, or create it first).
    """
    if settings.worker_database_url:
        return settings.worker_database_url
    app_url = make_url(settings.effective_database_url)
    if app_url.get_backend_name() == "sqlite":
        return f"sqlite:///{settings.data_dir / 'dbos_sys.sqlite'}"
    system = app_url.set(database=f"{app_url.database}{SYSTEM_DATABASE_SUFFIX}")
    return system.render_as_string(hide_password=False)


def current() -> Worker:
    """The worker running in this process (what a workflow step uses to reach the database)."""
    worker = _running
    if worker is None:
        raise RuntimeError("no worker is running in this process")
    return worker


def start_after_commit(key: str, start: Callable[[list[Any]], None], what: str) -> None:
    """Start, once a session commits, the workflows it queued in session.info[key]; forget them on rollback.

    Only a process that runs a worker starts them (elsewhere a sweep does). A commit made inside a
    workflow step may not start another workflow from there, so the start happens in a thread of its
    own; and a start that fails is left to the sweep, since what it starts is committed already.
    """

    def begin(queued: list[Any]) -> None:
        try:
            start(queued)
        except Exception as exc:
            log.warning(f"{what} start deferred to the sweep", count=len(queued), error=f"{type(exc).__name__}: {exc}")

    @event.listens_for(Session, "after_commit")
    def _after_commit(session: Session) -> None:
        queued: list[Any] = session.info.pop(key, [])
        if not queued or _running is None:
            return
        if DBOS.workflow_id is None:
            begin(queued)
        else:
            threading.Thread(target=begin, args=(queued,), name="cloudlet-start-workflows", daemon=True).start()

    @event.listens_for(Session, "after_rollback")
    def _after_rollback(session: Session) -> None:
        session.info.pop(key, None)


def _claim_slot(directory: Path) -> tuple[int, IO[bytes]]:
    """The lowest slot number no live process on this host holds, locked until the handle closes.

    A process that dies drops its lock, so the one that replaces it gets the same slot, the same
    executor id, and with it the dead process's unfinished workflows to recover.
    """
    directory.mkdir(parents=True, exist_ok=True)
    for slot in itertools.count():
        handle = (directory / f"{slot}.lock").open("ab")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        return slot, handle
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass
class Worker:
    """DBOS for this process, configured from Settings, with the queues and schedules to declare."""

    settings: Settings
    db: Database
    queues: Sequence[QueueSpec] = ()
    schedules: Sequence[Schedule] = ()
    drivers: Drivers = field(default_factory=Drivers)  # the runtime's, so the API side and workflows share it
    executor_id: str | None = field(default=None, init=False)
    _slot: IO[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def system_database_url(self) -> str:
        """The DBOS system database this worker uses."""
        return system_database_url(self.settings)

    def _dbos_config(self) -> DBOSConfig:
        debug = self.settings.log_level.lower() == "debug"
        return {
            "name": APP_NAME,
            "system_database_url": self.system_database_url,
            "executor_id": self.executor_id,
            # Our own log lines say what ran; DBOS's start-up chatter only at debug level.
            "log_level": "DEBUG" if debug else "WARNING",
            "sys_db_pool_size": 10,
            # On SQLite DBOS polls for notifications; each poll only looks at what a workflow waits for, and
            # shutting down waits out one interval (1 s by default), which every restart and test paid.
            "notification_listener_polling_interval_sec": NOTIFICATION_POLL_SECONDS,
        }

    def _prepare_sqlite(self) -> None:
        url = make_url(self.system_database_url)
        if url.get_backend_name() != "sqlite" or not url.database:
            return
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        # WAL lets the executors of one host read while another writes; the mode sticks to the file.
        with sqlite3.connect(url.database, timeout=30) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
        conn.close()

    def start(self) -> None:
        """Launch DBOS, declare the queues and (re)apply the schedules. One running worker per process."""
        global _running
        with _lock:
            if _running is not None:
                raise RuntimeError("a worker is already running in this process (DBOS is a singleton)")
            _running = self
        try:
            slot, self._slot = _claim_slot(self.settings.data_dir / "worker-slots")
            self.executor_id = f"{self.settings.worker_id or socket.gethostname()}-{slot}"
            self._prepare_sqlite()
            DBOS(config=self._dbos_config())
            DBOS.launch()
            for queue in self.queues:
                # by default DBOS lets only the newest application version rewrite a queue's limits (rolling deploys)
                DBOS.register_queue(queue.name, global_concurrency=queue.global_concurrency,
                                    polling_interval_sec=queue.polling_interval_seconds)
            entries: list[ScheduleInput] = []
            for schedule in self.schedules:
                entry: ScheduleInput = {"schedule_name": schedule.name, "workflow_fn": schedule.workflow,
                                        "schedule": schedule.cron}
                if schedule.queue is not None:
                    entry["queue_name"] = schedule.queue
                entries.append(entry)
            if entries:
                DBOS.apply_schedules(entries)
        except BaseException:
            self._shutdown(grace_seconds=0)
            raise
        log.info("worker started", executor_id=self.executor_id,
                 system_database=make_url(self.system_database_url).render_as_string(hide_password=True),
                 schedules={s.name: s.cron for s in self.schedules})

    def stop(self, *, grace_seconds: int = SHUTDOWN_GRACE_SECONDS) -> None:
        """Stop taking work, give running workflows a moment to finish, and release DBOS."""
        if _running is not self:
            return
        self._shutdown(grace_seconds=grace_seconds)
        log.info("worker stopped", executor_id=self.executor_id)

    def _shutdown(self, *, grace_seconds: int) -> None:
        global _running
        try:
            # DBOS's own wait looks once a second (and sleeps the first second whatever runs): a workflow that
            # ends a moment after the stop began held every stop and restart a whole second
            deadline = time.monotonic() + grace_seconds
            while time.monotonic() < deadline and self._running_workflows():
                time.sleep(SHUTDOWN_POLL_SECONDS)
            DBOS.destroy(workflow_completion_timeout_sec=0)
        finally:
            if self._slot is not None:
                self._slot.close()
                self._slot = None
            with _lock:
                if _running is self:
                    _running = None

    def _running_workflows(self) -> bool:
        """Whether a workflow of this executor is running (one cut short by the shutdown is resumed by the
        next start)."""
        try:
            return bool(DBOS.list_workflows(status="PENDING", executor_id=self.executor_id, limit=1,
                                            load_input=False, load_output=False))
        except Exception:  # its database does not answer: give what may run its grace, as before
            return True

    def __enter__(self) -> Worker:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @asynccontextmanager
    async def lifespan(self, _app: Any) -> AsyncIterator[None]:
        """Run the worker for as long as an ASGI app serves (FastAPI's lifespan)."""
        await anyio.to_thread.run_sync(self.start)
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(self.stop)
