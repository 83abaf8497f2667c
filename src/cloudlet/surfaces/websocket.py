"""What the console websockets of every surface share: refusing a handshake in the surface's error format,
authenticating a websocket like a request, and carrying bytes between a websocket and a console.

A refused handshake answers with an HTTP status and the surface's error body where the server supports
it (uvicorn and Starlette's test client do), else it closes with 1008 (policy violation). Blocking
console calls run on a thread pool of their own, so open consoles never starve the request threads.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, cast

from fastapi import Request, WebSocket
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session
from starlette.websockets import WebSocketState

from cloudlet.auth.caller import Caller, authenticate
from cloudlet.drivers.base import DriverError, SerialConsole
from cloudlet.kit.errors import CloudletError, Forbidden, RateLimited
from cloudlet.kit.ratelimit import per_hour, per_minute
from cloudlet.surfaces.deps import Runtime, client_ip
from cloudlet.surfaces.errors import Problem, Renderer
from cloudlet.tokens.abilities import Ability

T = TypeVar("T")
POLICY_VIOLATION = 1008
SERIAL_POLL_SECONDS = 0.5  # a console read waits this long for output before the pump looks again
UPGRADE_MESSAGE = "This endpoint is a WebSocket: connect with a websocket client (an HTTP Upgrade request)."

_console_threads = ThreadPoolExecutor(max_workers=64, thread_name_prefix="console")


async def in_console_thread(call: Callable[..., T], *args: Any) -> T:
    """Run a blocking console call on the consoles' own thread pool."""
    return await asyncio.get_running_loop().run_in_executor(_console_threads, call, *args)


def runtime_of(websocket: WebSocket) -> Runtime:
    """The process's runtime."""
    runtime: Runtime = websocket.app.state.runtime
    return runtime


def upgrade_required(render: Renderer) -> JSONResponse:
    """The answer to a plain HTTP GET on a websocket endpoint: 426, in the surface's error format."""
    response = render(Problem(426, "UPGRADE_REQUIRED", UPGRADE_MESSAGE))
    response.headers["Upgrade"] = "websocket"
    return response


async def refuse(websocket: WebSocket, render: Renderer, error: CloudletError) -> None:
    """Turn the handshake down with the error's status and the surface's error body (or close 1008)."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        response = render(Problem(error.status, error.code, error.message))
        if isinstance(error, RateLimited):
            response.headers["Retry-After"] = str(error.retry_after)
        await websocket.send_denial_response(response)
        return
    await websocket.close(code=POLICY_VIOLATION, reason=error.message[:120])


def credential_of(websocket: WebSocket) -> str | None:
    """The credential a websocket presents: `Authorization: Bearer` or `X-API-Key`, as a request does.

    Never one in the URL: servers log a websocket's URL (uvicorn does, with its query), and a credential
    there would outlive the session. A URL may carry only a one-time token (the VNC link's).
    """
    scheme, _, value = websocket.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return websocket.headers.get("x-api-key", "").strip() or None


def caller_of(session: Session, runtime: Runtime, websocket: WebSocket, ability: Ability) -> Caller:
    """Authenticate a websocket as current_caller does a request: credential, rate limits, then the ability."""
    settings = runtime.settings
    ip = client_ip(cast(Request, websocket), settings.trusted_proxies)  # reads .client and .headers only
    caller = authenticate(session, settings, credential_of(websocket), ip)
    token = caller.token
    verdict = runtime.limiter.hit(
        caller.rate_key,
        per_minute(token.rate_limit_per_minute if token else settings.token_rate_per_minute),
        per_hour(token.rate_limit_per_hour if token else settings.token_rate_per_hour),
    )
    if not verdict.allowed:
        raise RateLimited(f"You have exceeded the per {verdict.window.lower()} rate limit. "
                          f"Please retry after {verdict.retry_after} seconds.",
                          retry_after=verdict.retry_after, headers=verdict.headers())
    if not caller.can(ability):
        raise Forbidden(f"This token lacks the {ability.value!r} ability.", code="INSUFFICIENT_SCOPE")
    return caller


async def _first_done(*pumps: Coroutine[Any, Any, None]) -> None:
    """Run the pumps until one ends (either side hung up); stop the others."""
    tasks = [asyncio.ensure_future(pump) for pump in pumps]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)  # a hang-up ends a pump with an error: expected


async def close(websocket: WebSocket, code: int = 1000, reason: str = "") -> None:
    """Close the websocket unless the client already did."""
    if websocket.application_state is WebSocketState.CONNECTED and websocket.client_state is WebSocketState.CONNECTED:
        with contextlib.suppress(RuntimeError, OSError):
            await websocket.close(code=code, reason=reason[:120])


async def _client_bytes(websocket: WebSocket, deliver: Callable[[bytes], Awaitable[None]]) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        data = message.get("bytes")
        if data is None:
            data = (message.get("text") or "").encode()
        if data:
            await deliver(data)


async def pipe_tcp(websocket: WebSocket, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Carry bytes both ways between an accepted websocket and a TCP connection until either side ends."""

    async def to_server(data: bytes) -> None:
        writer.write(data)
        await writer.drain()

    async def to_client() -> None:
        while data := await reader.read(65536):
            await websocket.send_bytes(data)

    try:
        await _first_done(_client_bytes(websocket, to_server), to_client())
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        await close(websocket)


async def pipe_serial(websocket: WebSocket, console: SerialConsole) -> None:
    """Carry keystrokes to a serial console and its output back (binary frames) until either side ends."""
    ended = ""

    async def to_console(data: bytes) -> None:
        await in_console_thread(console.write, data)

    async def to_client() -> None:
        nonlocal ended
        try:
            while True:
                data = await in_console_thread(console.read, SERIAL_POLL_SECONDS)
                if data:
                    await websocket.send_bytes(data)
        except DriverError as error:  # taken over, or the guest stopped
            ended = str(error)

    try:
        await _first_done(_client_bytes(websocket, to_console), to_client())
    finally:
        await in_console_thread(console.close)
        await close(websocket, reason=ended)


async def stream_text(websocket: WebSocket, read: Callable[[], str], interval: float) -> None:
    """Send what read() returns as it grows (text frames): all of it first, then each new part. When it
    starts over (the guest restarted and its log with it), send the new text whole."""
    ended = ""

    async def to_client() -> None:
        nonlocal ended
        sent = ""
        try:
            while True:
                text = await in_console_thread(read)
                if text != sent:
                    await websocket.send_text(text[len(sent):] if text.startswith(sent) else text)
                    sent = text
                await asyncio.sleep(interval)
        except CloudletError as error:
            ended = error.message

    async def ignore(_data: bytes) -> None:
        return None

    try:
        await _first_done(_client_bytes(websocket, ignore), to_client())
    finally:
        await close(websocket, reason=ended)
