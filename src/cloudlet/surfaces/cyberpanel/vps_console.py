"""CyberPanel surface: GET /api/v1/vps/{id}/console, "Get noVNC console URL for browser-based access".

The reference's shape: {"vps_id", "console_url", "type": "novnc", "expires_in_seconds": 300} and the
message "Console URL generated. Valid for 5 minutes." Cloudlet serves no noVNC page of its own, so
`console_url` is the websocket a noVNC client opens (RFB over WebSocket: wss:// when
CLOUDLET_PUBLIC_URL is https), with a one-time token in it; `password` (Cloudlet's addition) is the
VNC password that the console's own handshake asks for, and `expires_at` when both stop working. The
lifetime is console_ticket_seconds (300 by default, as the reference says). See surfaces/primary/console.py
for the websocket itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel
from sqlalchemy.orm import Session

from cloudlet.auth.caller import Caller
from cloudlet.instances import console
from cloudlet.surfaces.cyberpanel.errors import envelope
from cloudlet.surfaces.deps import AppRuntime, Runtime, requires
from cloudlet.tokens.abilities import Ability

router = APIRouter(prefix="/api/v1/vps", tags=["cyberpanel"])

VpsReader = Annotated[Caller, requires(Ability.INSTANCES_READ)]


def _writing_session(request: Request) -> Iterator[Session]:
    # a GET that writes (the ticket): a writing transaction from the start, so SQLite takes its lock up front
    runtime: Runtime = request.app.state.runtime
    with runtime.db.session(write=True) as session:
        yield session


WritingSession = Annotated[Session, Depends(_writing_session, scope="function")]


class CpConsole(BaseModel):
    """A console link as CyberPanel shows it."""

    vps_id: int
    console_url: str
    type: Literal["novnc"] = "novnc"
    expires_in_seconds: int
    password: str
    expires_at: datetime


def _validity(seconds: int) -> str:
    if seconds % 60 == 0:
        minutes = seconds // 60
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{seconds} seconds"


@router.get("/{vps_id}/console", summary="Get Console Access")
def vps_console(vps_id: str, caller: VpsReader, db: WritingSession, runtime: AppRuntime,
                response: Response) -> dict[str, Any]:
    """A noVNC (RFB over WebSocket) console URL with a one-time token, and the VNC password."""
    response.headers["Cache-Control"] = "no-store"
    link = console.open_vnc(db, runtime.drivers, runtime.settings, caller, vps_id)
    data = CpConsole(vps_id=link.instance_id, console_url=link.url, expires_in_seconds=link.expires_in_seconds,
                     password=link.password, expires_at=link.expires_at)
    return envelope(data.model_dump(mode="json"),
                    f"Console URL generated. Valid for {_validity(link.expires_in_seconds)}.")
