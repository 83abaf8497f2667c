"""Per-request bookkeeping around every surface: request ids, rate-limit headers, usage and audit."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import gc
import queue
import random
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import anyio
import structlog
from sqlalchemy import inspect
from sqlalchemy.orm import Session
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cloudlet.audit import service as audit
from cloudlet.auth.caller import Caller
from cloudlet.auth.models import User
from cloudlet.kit.db import Database
from cloudlet.surfaces.deps import BOOKKEEPING, READ_METHODS, Runtime, client_ip, end_unclaimed_session
from cloudlet.surfaces.security_headers import add_missing, encoded
from cloudlet.tokens import service as tokens

log = structlog.get_logger(__name__)


def new_request_id() -> str:
    """32 random hex digits, like a uuid4's.

    Why not uuid4: os.urandom lets go of the GIL, and the event loop then waits for a worker thread
    to give it back (up to the 5 ms switch interval) on every request. A request id needs to be
    unique, not secret: the random module (seeded from os.urandom, again in a forked child) does.
    """
    return f"{random.getrandbits(128):032x}"


class RequestBookkeeping:
    """Adds X-Request-ID and X-RateLimit-* headers; after the answer, logs token use and audit entries.

    Every mutating request gets an audit entry (authenticated or not, whatever its status); every
    request made with an API token gets a usage-log line. Both are written after the answer is
    sent, and the request's task waits for them, so they are in the database when it ends. Once the
    app has started, it settles the heap (settle_heap); at shutdown it writes what is still queued.
    """

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime
        self.writer = BookkeepingWriter(runtime.db, flush_seconds=runtime.settings.usage_flush_seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, self._flush_at_shutdown(receive), self._settle_after_startup(send))
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        state: dict[str, Any] = scope.setdefault("state", {})
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming[:64] if incoming else new_request_id()
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = request_id
                rate_headers: dict[str, str] | None = state.get("rate_headers")
                if rate_headers:
                    add_missing(headers.raw, encoded(rate_headers))
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            await end_unclaimed_session(state)
            elapsed_ms = int((time.perf_counter() - started) * 1000)
            log.info("request", method=scope["method"], path=scope["path"], status=status, ms=elapsed_ms,
                     request_id=request_id)
            caller: Caller | None = state.get("caller")
            mutating = scope["method"] not in READ_METHODS
            if mutating or (caller is not None and caller.token_facts is not None):
                record = self._describe(scope, state, caller, status, elapsed_ms, request_id)
                # A mutating request holds its connection until its audit entry is committed; a read
                # does not wait for its usage line, which joins the next batch (within a second),
                # unless the settings ask for it (tests, which read usage right after a request).
                wait = mutating or self.runtime.settings.usage_log_sync
                written = self.writer.submit(record, urgent=wait)
                if wait:
                    await asyncio.wrap_future(written)

    @staticmethod
    def _settle_after_startup(send: Send) -> Send:
        async def send_and_settle(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":  # the app and its worker have started
                settle_heap()
            await send(message)

        return send_and_settle

    def _flush_at_shutdown(self, receive: Receive) -> Receive:
        async def receive_and_flush() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown":  # every request has ended: write what they left
                await anyio.to_thread.run_sync(self.writer.flush)
            return message

        return receive_and_flush

    def _describe(self, scope: Scope, state: dict[str, Any], caller: Caller | None, status: int,
                  elapsed_ms: int, request_id: str) -> RequestRecord:
        ip: str | None = state.get("client_ip") or client_ip(Request(scope), self.runtime.settings.trusted_proxies)
        params: dict[str, Any] = scope.get("path_params") or {}
        actor = _Actor.of(caller, state)
        return RequestRecord(
            method=scope["method"], path=scope["path"], ip=ip, status=status, elapsed_ms=elapsed_ms,
            request_id=request_id, target=",".join(f"{k}={v}" for k, v in params.items()) or None,
            actor=actor, reread_email=actor.user_id is not None and actor.email is None,
        )


_heap_settled = False  # whether this process has frozen its heap already


def settle_heap() -> None:
    """Move every object alive into the collector's permanent generation (gc.freeze), once a process.

    Why: a started server holds a few hundred thousand long-lived objects (routes, models, mappers,
    DBOS); every full collection walked all of them, about 100 ms in which the event loop answered
    nothing, every few seconds under load: that made the slowest requests. Garbage made later is
    collected as before. Once a process: one that starts app after app (the tests) would otherwise keep
    for good what the earlier ones left.
    """
    global _heap_settled
    if not _heap_settled:
        _heap_settled = True
        gc.collect()  # what is garbage now must not be frozen with the rest
        gc.freeze()


@dataclass(frozen=True)
class _Actor:
    """Who made a request, read without touching the request's (closed, maybe rolled-back) session."""

    user_id: int | None
    email: str | None
    token_id: int | None

    @classmethod
    def of(cls, caller: Caller | None, state: dict[str, Any]) -> _Actor:
        """The caller's ids, or what an unauthenticated endpoint (a sign-in, say) noted in the state.

        A request that failed rolled its session back, and that expires every row it loaded, so a
        plain `caller.user.email` would raise; the ids survive, loaded values may not (the audit
        entry then reads the email again).
        """
        if caller is None:
            return cls(state.get("actor_user_id"), state.get("actor_email"), None)
        loaded = caller.loaded_user  # never loaded here: a cached caller may not have needed its row
        email = inspect(loaded).dict.get("email") if loaded is not None else None
        token_id = caller.token_facts.id if caller.token_facts is not None else None
        return cls(caller.user_id, email if isinstance(email, str) else None, token_id)


@dataclass(frozen=True)
class RequestRecord:
    """What one finished request leaves behind: a usage-log line, an audit entry, or both."""

    method: str
    path: str
    ip: str | None
    status: int
    elapsed_ms: int
    request_id: str
    target: str | None
    actor: _Actor
    reread_email: bool  # the request rolled back before its caller's email could be kept

    def token_use(self) -> tokens.TokenUse | None:
        """The usage-log line, for a request made with an API token."""
        if self.actor.token_id is None:
            return None
        return tokens.TokenUse(token_id=self.actor.token_id, endpoint=self.path, method=self.method, ip=self.ip,
                               status=self.status, elapsed_ms=self.elapsed_ms)

    def audit_record(self, session: Session) -> audit.AuditRecord | None:
        """The audit entry, for a mutating request."""
        if self.method in READ_METHODS:
            return None
        actor = self.actor
        email = actor.email
        if self.reread_email and actor.user_id is not None:
            user = session.get(User, actor.user_id)
            email = user.email if user is not None else None
        return audit.AuditRecord(actor_user_id=actor.user_id, actor_email=email, token_id=actor.token_id,
                                 ip=self.ip, method=self.method, path=self.path, target=self.target,
                                 status=self.status, request_id=self.request_id)


class BookkeepingWriter:
    """One thread per process writes every request's records, many to a transaction.

    Why: a write per request made every GET pay for a transaction (and, on SQLite, queue on the
    write lock). Records nobody waits for (the usage lines of reads) are gathered for up to
    `flush_seconds` and written together: the token counts as one UPDATE per token, the lines as one
    multi-row INSERT. A record somebody waits for (a mutating request's audit entry, or every record
    when usage_log_sync is on) is written at once, with whatever has gathered. Everything is written
    at shutdown too (the ASGI lifespan's end, and atexit). A batch that fails is retried one record
    at a time, so one bad record cannot lose the others. The thread stops after a few idle seconds
    and starts again on the next record.
    """

    MAX_BATCH = 2000
    IDLE_SECONDS = 5.0
    FLUSH_SECONDS = 1.0

    def __init__(self, db: Database, *, flush_seconds: float = FLUSH_SECONDS) -> None:
        self.db = db
        self.flush_seconds = flush_seconds
        self._queue: queue.SimpleQueue[tuple[RequestRecord | None, Future[None], bool]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._exit_hook = False
        self._urgent = threading.Event()  # set when an urgent record is queued: write now
        self._backlog = False  # the last batch was full: more may be waiting

    def submit(self, record: RequestRecord | None, *, urgent: bool = False) -> Future[None]:
        """Queue a record; the future completes once it is committed (or has failed and been logged).

        An urgent record is written at once; another one within flush_seconds. None queues nothing
        but an urgent marker, whose future completes once everything before it is written.
        """
        done: Future[None] = Future()
        with self._lock:
            self._queue.put((record, done, urgent))
            if urgent:
                self._urgent.set()
            if self._thread is None:
                if not self._exit_hook:
                    atexit.register(self.flush)
                    self._exit_hook = True
                self._thread = threading.Thread(target=self._run, name="cloudlet-bookkeeping", daemon=True)
                self._thread.start()
        return done

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until every record queued so far is written (at shutdown, so none is lost)."""
        with contextlib.suppress(TimeoutError):
            self.submit(None, urgent=True).result(timeout=timeout)

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=self.IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            self._write(self._gather(first))

    def _gather(self, first: tuple[RequestRecord | None, Future[None], bool]) -> list[
            tuple[RequestRecord | None, Future[None], bool]]:
        # Sleep until the batch is due or an urgent record comes, then take what has gathered: records
        # queued meanwhile do not wake this thread one by one (each wake-up took the GIL from the event
        # loop, a thread switch per GET). After a full batch the rest is due already.
        if not first[2] and not self._backlog:
            self._urgent.wait(self.flush_seconds)
        self._urgent.clear()
        batch = [first]
        while len(batch) < self.MAX_BATCH:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        self._backlog = len(batch) >= self.MAX_BATCH
        return batch

    def _write(self, batch: list[tuple[RequestRecord | None, Future[None], bool]]) -> None:
        try:
            self._commit([record for record, _, _ in batch if record is not None])
        finally:  # a request waits on its future: it must complete whatever happened
            for _, done, _ in batch:
                if not done.done():
                    done.set_result(None)

    def _commit(self, records: list[RequestRecord]) -> None:
        if not records:
            return
        try:
            with self.db.session() as session:
                session.info[BOOKKEEPING] = True  # no credential changes here: keep the credential cache
                uses = [use for use in (r.token_use() for r in records) if use is not None]
                entries = [entry for entry in (r.audit_record(session) for r in records) if entry is not None]
                tokens.record_uses(session, uses)
                audit.record_many(session, entries)
        except Exception:
            if len(records) > 1:
                for record in records:
                    self._commit([record])
                return
            # bookkeeping must never break the answer, which is already sent
            log.exception("could not record request", path=records[0].path, method=records[0].method)
