"""Primary surface: GET /api/instances/{id}/vnc (Evorxa: "wss URL with token + VNC password"), and the
websocket at /api/consoles/vnc that the URL points to.

The answer: {"url", "token", "password", "expires_at", "expires_in_seconds", "instance_id"}. `url` is
CLOUDLET_PUBLIC_URL with a websocket scheme (https -> wss, http -> ws) and the path
/api/consoles/vnc?token=...; the token is good for one connection within console_ticket_seconds (300
by default). The websocket carries RFB (VNC) in binary frames, straight from the guest's VNC server
(noVNC connects to it as it is; it may ask for the "binary" subprotocol), whose handshake asks for
VNC authentication with `password`. A newer link replaces the password of an unused older one.

The websocket needs no credential: the token in its URL, used up by the first connection and
expiring, stands in for one (browsers cannot set headers on a websocket), so it is on the public list.
A refused handshake answers 401 (token unknown, used or expired), 409 (the instance is not running)
or 503 (the VNC server did not answer) with the usual error body. A plain GET answers 426.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, WebSocket
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.orm import Session

from cloudlet.auth.caller import Caller
from cloudlet.instances import console
from cloudlet.kit.errors import CloudletError, Unavailable
from cloudlet.kit.serial import IsoMillis
from cloudlet.surfaces import websocket as ws
from cloudlet.surfaces.deps import AppRuntime, Runtime, requires
from cloudlet.surfaces.primary import errors
from cloudlet.tokens.abilities import Ability

router = APIRouter(tags=["primary"])

Reader = Annotated[Caller, requires(Ability.INSTANCES_READ)]
CONNECT_SECONDS = 10.0


def _writing_session(request: Request) -> Iterator[Session]:
    # a GET that writes (the ticket): a writing transaction from the start, so SQLite takes its lock up front
    runtime: Runtime = request.app.state.runtime
    with runtime.db.session(write=True) as session:
        yield session


WritingSession = Annotated[Session, Depends(_writing_session, scope="function")]


class PrimaryVncRead(BaseModel):
    """A VNC console link."""

    instance_id: str
    url: str
    token: str
    password: str
    expires_at: IsoMillis
    expires_in_seconds: int

    @classmethod
    def of(cls, link: console.VncLink) -> PrimaryVncRead:
        """The primary shape of a link."""
        return cls(instance_id=link.instance_uuid, url=link.url, token=link.token, password=link.password,
                   expires_at=link.expires_at, expires_in_seconds=link.expires_in_seconds)


@router.get("/api/instances/{instance_id}/vnc", response_model=PrimaryVncRead,
            summary="A VNC console link: a wss URL with a one-time token, and the VNC password")
def vnc_link(instance_id: str, caller: Reader, db: WritingSession, runtime: AppRuntime,
             response: Response) -> PrimaryVncRead:
    """Set a fresh VNC password on the running guest and hand out a one-time websocket URL to its screen."""
    response.headers["Cache-Control"] = "no-store"
    return PrimaryVncRead.of(console.open_vnc(db, runtime.drivers, runtime.settings, caller, instance_id))


@router.get(console.VNC_PROXY_PATH, status_code=426, response_class=JSONResponse,
            summary="The VNC websocket (RFB over WebSocket); a plain GET answers 426")
def vnc_websocket_over_http() -> JSONResponse:
    """Only a websocket handshake, with the token of a console link, is served here."""
    return ws.upgrade_required(errors.render)


def _redeem(runtime: Runtime, token: str) -> console.VncTarget:
    with runtime.db.session() as session:
        return console.redeem_vnc(session, token)


@router.websocket(console.VNC_PROXY_PATH)
async def vnc_websocket(websocket: WebSocket) -> None:
    """Use up the token, connect to the guest's VNC server, then carry RFB both ways."""
    try:
        target = await ws.in_console_thread(_redeem, ws.runtime_of(websocket),
                                            websocket.query_params.get("token", ""))
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(target.host, target.port),
                                                    timeout=CONNECT_SECONDS)
        except (OSError, TimeoutError):
            raise Unavailable("The guest's VNC server did not answer.", code="CONSOLE_UNAVAILABLE") from None
    except CloudletError as error:
        await ws.refuse(websocket, errors.render, error)
        return
    offered = websocket.scope.get("subprotocols") or []
    await websocket.accept(subprotocol="binary" if "binary" in offered else None)
    await ws.pipe_tcp(websocket, reader, writer)

