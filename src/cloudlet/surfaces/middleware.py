"""Per-request bookkeeping around every surface: request ids, rate-limit headers, usage and audit."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import inspect
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cloudlet.audit import service as audit
from cloudlet.auth.caller import Caller
from cloudlet.auth.models import User
from cloudlet.surfaces.deps import READ_METHODS, Runtime, client_ip
from cloudlet.tokens import service as tokens

log = structlog.get_logger(__name__)


class RequestBookkeeping:
    """Adds X-Request-ID and X-RateLimit-* headers; after the answer, logs token use and audit entries."""

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        state: dict[str, Any] = scope.setdefault("state", {})
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming[:64] if incoming else uuid.uuid4().hex
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = request_id
                for name, value in state.get("rate_headers", {}).items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            elapsed_ms = int((time.perf_counter() - started) * 1000)
            caller: Caller | None = state.get("caller")
            mutating = scope["method"] not in READ_METHODS
            if mutating or (caller is not None and caller.token is not None):
                await run_in_threadpool(self._record, scope, state, caller, status, elapsed_ms, request_id)

    def _record(self, scope: Scope, state: dict[str, Any], caller: Caller | None, status: int,
                elapsed_ms: int, request_id: str) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        ip: str | None = state.get("client_ip") or client_ip(Request(scope), self.runtime.settings.trusted_proxies)
        params: dict[str, Any] = scope.get("path_params") or {}
        target = ",".join(f"{k}={v}" for k, v in params.items()) or None
        actor = _Actor.of(caller, state)
        try:
            with self.runtime.db.session() as session:
                if actor.token_id is not None:
                    tokens.record_use(session, actor.token_id, endpoint=path, method=method, ip=ip,
                                      status=status, elapsed_ms=elapsed_ms)
                if method not in READ_METHODS:
                    email = actor.email
                    if email is None and actor.user_id is not None and caller is not None:
                        # The request rolled back, which expired the caller's rows: read the email again.
                        user = session.get(User, actor.user_id)
                        email = user.email if user is not None else None
                    audit.record(session, actor_user_id=actor.user_id, actor_email=email, token_id=actor.token_id,
                                 ip=ip, method=method, path=path, target=target, status=status,
                                 request_id=request_id)
        except Exception:  # bookkeeping must never break the answer already sent
            log.exception("could not record request", path=path, method=method)


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
        plain `caller.user.email` would raise; the identity key survives, loaded values may not.
        """
        if caller is None:
            return cls(state.get("actor_user_id"), state.get("actor_email"), None)
        user = inspect(caller.user)
        email = user.dict.get("email")
        token_id = None
        if caller.token is not None:
            identity = inspect(caller.token).identity
            token_id = int(identity[0]) if identity else None
        user_id = int(user.identity[0]) if user.identity else None
        return cls(user_id, email if isinstance(email, str) else None, token_id)
