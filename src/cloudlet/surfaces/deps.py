"""What every surface's routers share: the runtime, the request's session, and the caller."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any

import anyio
from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from cloudlet.auth.caller import Caller, CredentialCache, authenticate, recall
from cloudlet.config import Settings
from cloudlet.kit.db import Database
from cloudlet.kit.errors import Forbidden, RateLimited
from cloudlet.kit.ratelimit import RateLimiter, Verdict, per_hour, per_minute
from cloudlet.mail.service import Mailer
from cloudlet.nodes.service import Drivers
from cloudlet.tokens.abilities import Ability

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class Runtime:
    """The parts one server process runs with, chosen in app.py."""

    settings: Settings
    db: Database
    limiter: RateLimiter
    mailer: Mailer
    credentials: CredentialCache = field(default_factory=CredentialCache)  # API tokens seen in the last second
    drivers: Drivers = field(default_factory=Drivers)  # how node URIs become drivers, shared with the worker

    def __post_init__(self) -> None:
        self.db.after_commit.append(self._forget_credentials)

    def _forget_credentials(self, session: Session) -> None:
        # any write committed here may have revoked a token or suspended a user: the next request
        # must see it. The request log's own batches (marked so) change no credential.
        if not session.info.get(BOOKKEEPING):
            self.credentials.forget_all()


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


async def get_db(request: Request) -> AsyncIterator[Session]:
    """The request's session: one transaction, committed when the endpoint returns cleanly.

    Async, so that opening it costs no thread (a session takes its connection at its first
    statement, in the endpoint's thread); only the commit or rollback runs in one.
    """
    runtime: Runtime = request.app.state.runtime
    session = runtime.db.open(write=request.method not in READ_METHODS)
    try:
        yield session
    except BaseException:
        with anyio.CancelScope(shield=True):  # a client that hangs up must not leak the connection
            await run_in_threadpool(Database.finish, session, commit=False)
        raise
    with anyio.CancelScope(shield=True):
        await run_in_threadpool(Database.finish, session, commit=True)


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
    caller = recall(runtime.credentials, db, credential, ip) or \
        authenticate(db, runtime.settings, credential, ip, runtime.credentials)
    return _admit(request, caller, _count(runtime, caller))


async def request_caller(request: Request, db: DbSession) -> Caller:
    """current_caller for the event loop: a token seen in the last second costs no query and no thread."""
    cached: Caller | None = getattr(request.state, "caller", None)
    if cached is not None:
        return cached
    runtime: Runtime = request.app.state.runtime
    credential, ip = _credential_and_ip(request, runtime)
    caller = recall(runtime.credentials, db, credential, ip)
    if caller is None:
        caller = await run_in_threadpool(authenticate, db, runtime.settings, credential, ip, runtime.credentials)
    # the in-memory limiter only computes; Redis answers over the network, so from a thread
    verdict = await run_in_threadpool(_count, runtime, caller) if runtime.limiter.blocking else _count(runtime, caller)
    return _admit(request, caller, verdict)


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

    async def dependency(caller: Annotated[Caller, Depends(request_caller)]) -> Caller:
        if not caller.can(ability):
            raise Forbidden(f"This token lacks the {ability.value!r} ability.", code="INSUFFICIENT_SCOPE")
        return caller

    dependency.required_ability = ability  # type: ignore[attr-defined]  # read by the scope test
    return Depends(dependency)


async def _signed_in(caller: Annotated[Caller, Depends(request_caller)]) -> Caller:
    if not caller.is_session:
        raise Forbidden("This endpoint needs a signed-in session, not an API token.", code="SESSION_REQUIRED")
    return caller


async def _admin(caller: Annotated[Caller, Depends(request_caller)]) -> Caller:
    if not caller.is_admin:
        raise Forbidden("Administrator access is required.", code="ADMIN_REQUIRED")
    return caller


async def _authenticated(caller: Annotated[Caller, Depends(request_caller)]) -> Caller:
    return caller


# The scope test reads these markers: every route must carry one or be on the public list.
_authenticated.required_ability = "any"  # type: ignore[attr-defined]
_signed_in.required_ability = "session"  # type: ignore[attr-defined]
_admin.required_ability = "admin"  # type: ignore[attr-defined]

AuthedCaller = Annotated[Caller, Depends(_authenticated)]  # any valid credential
SessionCaller = Annotated[Caller, Depends(_signed_in)]  # a signed-in user, not an API token
AdminCaller = Annotated[Caller, Depends(_admin)]  # an administrator with full access
FullCaller = Annotated[Caller, requires(Ability.ALL)]  # a credential with every ability
