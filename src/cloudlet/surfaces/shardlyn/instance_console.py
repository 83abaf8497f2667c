"""Shardlyn surface: the websockets of "Console & Logs".

- /v1/instances/{id}/console: the guest's serial console, interactive. What the client sends (binary or
  text frames) is typed on the serial line; what the guest prints comes back in binary frames. One
  session per instance: a new one takes the console over and the old one is closed (1000, with the
  reason). The session also ends when the guest stops. Needs instances:write: whoever holds it types
  into the server.
- /v1/instances/{id}/logs: the serial log, live (instances:read). Text frames: the log since the guest
  last started, then each new part as it comes; after a restart the new boot's log whole.

A websocket authenticates as every Shardlyn endpoint does: `Authorization: Bearer <JWT or API token>`,
or X-API-Key. Not with a credential in the URL, which servers log (a browser, which cannot set headers
on a websocket, uses the VNC link's one-time token instead). A refused handshake answers with the HTTP
status and {"error"} body of any Shardlyn error; a plain GET on either path answers 426. {id} is the
instance's uuid or numeric id.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, WebSocket
from fastapi.responses import JSONResponse

from cloudlet.auth.caller import Caller
from cloudlet.drivers.base import SerialConsole
from cloudlet.instances import console
from cloudlet.kit.errors import CloudletError
from cloudlet.surfaces import websocket as ws
from cloudlet.surfaces.deps import Runtime, requires
from cloudlet.surfaces.shardlyn import errors
from cloudlet.tokens.abilities import Ability

router = APIRouter(prefix="/v1/instances", tags=["shardlyn"])

Reader = Annotated[Caller, requires(Ability.INSTANCES_READ)]
Writer = Annotated[Caller, requires(Ability.INSTANCES_WRITE)]


@router.get("/{instance_id}/console", status_code=426, response_class=JSONResponse,
            summary="WebSocket: interactive serial console (a plain GET answers 426)")
def console_over_http(instance_id: str, caller: Writer) -> JSONResponse:
    """Only a websocket handshake is served here."""
    return ws.upgrade_required(errors.render)


@router.get("/{instance_id}/logs", status_code=426, response_class=JSONResponse,
            summary="WebSocket: live serial log (a plain GET answers 426)")
def logs_over_http(instance_id: str, caller: Reader) -> JSONResponse:
    """Only a websocket handshake is served here."""
    return ws.upgrade_required(errors.render)


def _open_serial(runtime: Runtime, websocket: WebSocket, instance_id: str) -> SerialConsole:
    with runtime.db.session() as session:
        caller = ws.caller_of(session, runtime, websocket, Ability.INSTANCES_WRITE)
        return console.open_serial(session, runtime.drivers, caller, instance_id)


def _log_source(runtime: Runtime, websocket: WebSocket, instance_id: str) -> console.SerialLogSource:
    with runtime.db.session() as session:
        caller = ws.caller_of(session, runtime, websocket, Ability.INSTANCES_READ)
        return console.serial_log_source(session, caller, instance_id)


@router.websocket("/{instance_id}/console")
async def serial_console(websocket: WebSocket, instance_id: str) -> None:
    """Type on the guest's serial line and see what it prints."""
    try:
        session = await ws.in_console_thread(_open_serial, ws.runtime_of(websocket), websocket, instance_id)
    except CloudletError as error:
        await ws.refuse(websocket, errors.render, error)
        return
    try:
        await websocket.accept()
    except BaseException:
        await ws.in_console_thread(session.close)
        raise
    await ws.pipe_serial(websocket, session)


@router.websocket("/{instance_id}/logs")
async def live_logs(websocket: WebSocket, instance_id: str) -> None:
    """The serial log, then what the guest prints as it prints it."""
    runtime = ws.runtime_of(websocket)
    try:
        source = await ws.in_console_thread(_log_source, runtime, websocket, instance_id)
    except CloudletError as error:
        await ws.refuse(websocket, errors.render, error)
        return
    await websocket.accept()

    def read() -> str:
        return console.read_serial_log(runtime.drivers, source).text

    await ws.stream_text(websocket, read, runtime.settings.console_log_poll_seconds)
