"""What every surface's routers share: the runtime, the request's session, and the caller."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Annotated, Any, Concatenate, ParamSpec, TypeVar

import anyio
from fastapi import Depends, Request
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from cloudlet.auth.caller import Caller, CredentialCache, authenticate, looks_like_jwt, recall
from cloudlet.config import Settings
from cloudlet.kit.db import Database
from cloudlet.kit.errors import Forbidden, RateLimited
from cloudlet.kit.fresh import FreshCache
from cloudlet.kit.ratelimit import RateLimiter, Verdict, per_hour, per_minute
from cloudlet.mail.service import Mailer
from cloudlet.nodes.service import Drivers
from cloudlet.tokens import service as tokens
from cloudlet.tokens.abilities import Ability

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
P = ParamSpec("P")
T = TypeVar("T")

# The database work of the async dependencies and endpoints (ending a session, authenticating a token the
# credential cache does not know, /api/me's read) runs in these few threads, not in anyio's pool of 40.
# Why: every thread that holds work competes for the GIL with the event loop; under load anyio's pool
# spread 32 concurrent requests over 32 threads, and the loop spent more time waiting for the GIL than
# serving (a third fewer requests a second than with 8 threads). Sync endpoints still use anyio's pool.
DATABASE_THREADS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="cloudlet-db")


async def in_thread(work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """work(*args, **kwargs) in one of DATABASE_THREADS, with this task's context variables."""
    context = contextvars.copy_context()
    call = functools.partial(context.run, work, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(DATABASE_THREADS, call)


@dataclass
class Runtime:
    """The parts one server process runs with, chosen in app.py."""

    settings: Settings
    db: Database
    limiter: RateLimiter
    mailer: Mailer
    credentials: CredentialCache = field(default_factory=CredentialCache)  # API tokens seen in the last second
    # rendered bodies of the hottest reads (GET /api/me), by what they were read for, kept like credentials
    answers: FreshCache[Hashable, bytes] = field(default_factory=FreshCache)
    # the answers being read right now, on which event loop, and the answer once read
    answering: dict[Hashable, tuple[asyncio.AbstractEventLoop, asyncio.Task[bytes]]] = field(default_factory=dict)
    # the tokens being looked up right now (by their lookup key), on which event loop, and when that ends
    authenticating: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = field(default_factory=dict)
    drivers: Drivers = field(default_factory=Drivers)  # how node URIs become drivers, shared with the worker

    def __post_init__(self) -> None:
        self.db.after_commit.append(self._forget_reads)

    def _forget_reads(self, session: Session) -> None:
        # any write committed here may have revoked a token, suspended a user or moved a balance: the next
        # request must see it. The request log's own batches (marked so) change nothing they hold.
        if not session.info.get(BOOKKEEPING):
            self.credentials.forget_all()
            self.answers.forget_all()


BOOKKEEPING = "cloudlet_bookkeeping"  # Session.info key of the request log's writer


# The small dependencies are async so that FastAPI runs them on the event loop, not in a thread.
async def get_runtime(request: Request) -> Runtime:
    """The process's runtime."""
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_settings(request: Request) -> Settings:
    """The process's settings."""
    runtime: Runtime = request.app.state.runtime
    return runtime.settings


REQUEST_SESSION = "cloudlet_session"  # key of the request's session in the ASGI scope's state


def _state(request: Request) -> dict[str, Any]:
    """The ASGI scope's state (what request.state reads), without Starlette's State wrapper."""
    state: dict[str, Any] = request.scope.setdefault("state", {})
    return state


def request_session(request: Request) -> Session:
    """The request's one session, opened at the first ask: by DbSession, by an authentication the credential
    cache could not answer, or by a caller's row. Opening does no I/O (see Database.open).

    get_db ends the session it hands out; one that no endpoint took through DbSession (it only read a
    caller's rows) is rolled back after the answer, by end_unclaimed_session.
    """
    state = _state(request)
    session: Session | None = state.get(REQUEST_SESSION)
    if session is None:
        runtime: Runtime = request.app.state.runtime
        session = state[REQUEST_SESSION] = runtime.db.open(write=request.method not in READ_METHODS)
    return session


async def get_db(request: Request) -> AsyncIterator[Session]:
    """The request's session: one transaction, committed when the endpoint returns cleanly.

    Async, so that opening it costs no thread (a session takes its connection at its first
    statement, in the endpoint's thread); only a commit or rollback with a connection to end runs in one.
    """
    write = request.method not in READ_METHODS
    session = request_session(request)
    try:
        yield session
    except BaseException:
        await _end(request, session, write=write, commit=False)
        raise
    await _end(request, session, write=write, commit=True)


async def end_unclaimed_session(state: dict[str, Any]) -> None:
    """Roll back and close the session of a request whose endpoint did not take it (nothing to commit)."""
    session: Session | None = state.pop(REQUEST_SESSION, None)
    if session is not None:
        await _finish(session, write=False, commit=False)


async def _end(request: Request, session: Session, *, write: bool, commit: bool) -> None:
    _state(request).pop(REQUEST_SESSION, None)  # ended here: nothing left for end_unclaimed_session
    await _finish(session, write=write, commit=commit)


async def _finish(session: Session, *, write: bool, commit: bool) -> None:
    # A read that never took a connection (its caller came from the credential cache, its endpoint read
    # through a session of its own) ends without I/O: no thread for it. A writing session always goes to
    # a thread, since its commit hooks may start work.
    if not write and not Database.connected(session):
        session.close()  # nothing was read through it: nothing to commit or roll back
        return
    with anyio.CancelScope(shield=True):  # a client that hangs up must not leak the connection
        await in_thread(Database.finish, session, commit=commit)


async def read(runtime: Runtime, work: Callable[Concatenate[Connection, P], T], *args: P.args,
               **kwargs: P.kwargs) -> T:
    """work(connection, ...) in a reading transaction of its own, begun, run and ended in one thread.

    For an async endpoint whose reads are Core statements and need nothing of the request's session:
    one thread hop in all, where a sync endpoint costs one for the endpoint and another to end the
    request's session, and no Session to set up and tear down.
    """

    def work_in_transaction() -> T:
        with runtime.db.reading() as connection:
            return work(connection, *args, **kwargs)

    return await in_thread(work_in_transaction)


async def cached_answer(runtime: Runtime, key: Hashable, render: Callable[[], Awaitable[bytes]]) -> bytes:
    """The answer kept for key in runtime.answers, else render()'s, kept for the next requests.

    Requests that miss while another renders the same key on this loop take that one's answer: when an
    answer's second ran out, every request in flight for it missed at once, and each read it again. The
    render runs as a task of its own, so a client that hangs up cancels only its own wait.
    """
    body = runtime.answers.get(key)
    if body is not None:
        return body
    loop = asyncio.get_running_loop()
    pending = runtime.answering.get(key)
    if pending is not None and pending[0] is loop:
        return await asyncio.shield(pending[1])
    ticket = runtime.answers.ticket()  # before the read: see FreshCache.put

    async def render_and_keep() -> bytes:
        body = await render()
        runtime.answers.put(key, body, ticket)
        return body

    task = loop.create_task(render_and_keep())
    runtime.answering[key] = (loop, task)

    def ended(_: object) -> None:
        if runtime.answering.get(key, (None, None))[1] is task:
            del runtime.answering[key]
        if not task.cancelled():
            task.exception()  # retrieved here: a render whose waiters all hung up is not logged as lost

    task.add_done_callback(ended)
    return await asyncio.shield(task)


DbSession = Annotated[Session, Depends(get_db, scope="function")]  # commit before the answer is sent
AppSettings = Annotated[Settings, Depends(get_settings)]
AppRuntime = Annotated[Runtime, Depends(get_runtime)]


def client_ip(request: Request, trusted: list[str]) -> str | None:
    """The client's address; X-Forwarded-For is believed only from a trusted proxy."""
    peer = request.client.host if request.client else None
    if peer is None or not trusted:
        return peer
    networks = [ipaddress.ip_network(t, strict=False) for t in trusted]

    def is_trusted(addr: str) -> bool:
        try:
            return any(ipaddress.ip_address(addr) in n for n in networks)
        except ValueError:
            return False

    if not is_trusted(peer):
        return peer
    hops = [h.strip() for h in request.headers.get("x-forwarded-for", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop):
            return hop
    return peer


def credential_of(request: Request) -> str | None:
    """The presented credential: `Authorization: Bearer ...` or `X-API-Key: ...`."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    api_key = request.headers.get("x-api-key", "").strip()
    return api_key or None


def current_caller(request: Request, db: DbSession) -> Caller:
    """Authenticate the request once and count it against the caller's rate limits (from a thread)."""
    cached: Caller | None = getattr(request.state, "caller", None)
    if cached is not None:
        return cached
    runtime: Runtime = request.app.state.runtime
    credential, ip = _credential_and_ip(request, runtime)
    caller = recall(runtime.credentials, lambda: db, credential, ip) or \
        authenticate(db, runtime.settings, credential, ip, runtime.credentials)
    return _admit(request, caller, _count(runtime, caller))


async def request_caller(request: Request) -> Caller:
    """current_caller for the event loop: a token seen in the last second costs no query, no thread and no
    session (the request's session is opened only if the cache misses or an endpoint needs it)."""
    cached: Caller | None = _state(request).get("caller")
    if cached is not None:
        return cached
    runtime: Runtime = request.app.state.runtime
    credential, ip = _credential_and_ip(request, runtime)
    caller = recall(runtime.credentials, functools.partial(request_session, request), credential, ip)
    if caller is None:
        caller = await _authenticate(runtime, request_session(request), credential, ip)
    # the in-memory limiter only computes; Redis answers over the network, so from a thread
    verdict = await in_thread(_count, runtime, caller) if runtime.limiter.blocking else _count(runtime, caller)
    return _admit(request, caller, verdict)


async def _authenticate(runtime: Runtime, db: Session, credential: str | None, ip: str | None) -> Caller:
    """authenticate() in a thread; requests with an API token that another request is looking up wait for
    that lookup and take its answer from the credential cache.

    Why: when a token's cached second ran out, every request in flight with it missed the cache at once,
    and each read the token again (a query and two thread hops for each of 30 clients, where one does).
    A waiter whose answer the cache does not hold (the token was refused, or a commit emptied the cache
    meanwhile) authenticates by itself, as before.
    """
    key = tokens.lookup_key(credential) if credential and not looks_like_jwt(credential) else None
    if key is None:
        return await in_thread(authenticate, db, runtime.settings, credential, ip, runtime.credentials)
    loop = asyncio.get_running_loop()
    pending = runtime.authenticating.get(key)
    if pending is not None:
        if pending[0] is loop:
            await asyncio.shield(pending[1])
            caller = recall(runtime.credentials, lambda: db, credential, ip)
            if caller is not None:
                return caller
        return await in_thread(authenticate, db, runtime.settings, credential, ip, runtime.credentials)
    done: asyncio.Future[None] = loop.create_future()
    runtime.authenticating[key] = (loop, done)
    try:
        return await in_thread(authenticate, db, runtime.settings, credential, ip, runtime.credentials)
    finally:
        del runtime.authenticating[key]
        done.set_result(None)


def _credential_and_ip(request: Request, runtime: Runtime) -> tuple[str | None, str | None]:
    ip = client_ip(request, runtime.settings.trusted_proxies)
    request.state.client_ip = ip
    return credential_of(request), ip


def _count(runtime: Runtime, caller: Caller) -> Verdict:
    settings, token = runtime.settings, caller.token_facts
    return runtime.limiter.hit(
        caller.rate_key,
        per_minute(token.rate_limit_per_minute if token else settings.token_rate_per_minute),
        per_hour(token.rate_limit_per_hour if token else settings.token_rate_per_hour),
    )


def _admit(request: Request, caller: Caller, verdict: Verdict) -> Caller:
    request.state.caller = caller
    request.state.rate_headers = verdict.headers()
    if not verdict.allowed:
        raise RateLimited(
            f"You have exceeded the per {verdict.window.lower()} rate limit. "
            f"Please retry after {verdict.retry_after} seconds.",
            retry_after=verdict.retry_after,
            headers=verdict.headers(),
        )
    return caller


def requires(ability: Ability) -> Any:
    """A dependency that yields the caller if its credential carries the ability (403 otherwise)."""

    async def dependency(request: Request) -> Caller:
        caller = await request_caller(request)
        if not caller.can(ability):
            raise Forbidden(f"This token lacks the {ability.value!r} ability.", code="INSUFFICIENT_SCOPE")
        return caller

    dependency.required_ability = ability  # type: ignore[attr-defined]  # read by the scope test
    return Depends(dependency)


# Each calls request_caller itself rather than depending on it: one level less for FastAPI to solve on
# every request, and request_caller answers from request.state when an endpoint asks twice.
async def _signed_in(request: Request) -> Caller:
    caller = await request_caller(request)
    if not caller.is_session:
        raise Forbidden("This endpoint needs a signed-in session, not an API token.", code="SESSION_REQUIRED")
    return caller


async def _admin(request: Request) -> Caller:
    caller = await request_caller(request)
    if not caller.is_admin:
        raise Forbidden("Administrator access is required.", code="ADMIN_REQUIRED")
    return caller


async def _authenticated(request: Request) -> Caller:
    return await request_caller(request)


# The scope test reads these markers: every route must carry one or be on the public list.
_authenticated.required_ability = "any"  # type: ignore[attr-defined]
_signed_in.required_ability = "session"  # type: ignore[attr-defined]
_admin.required_ability = "admin"  # type: ignore[attr-defined]

AuthedCaller = Annotated[Caller, Depends(_authenticated)]  # any valid credential
SessionCaller = Annotated[Caller, Depends(_signed_in)]  # a signed-in user, not an API token
AdminCaller = Annotated[Caller, Depends(_admin)]  # an administrator with full access
FullCaller = Annotated[Caller, requires(Ability.ALL)]  # a credential with every ability
