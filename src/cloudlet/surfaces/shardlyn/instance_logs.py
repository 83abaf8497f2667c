"""Shardlyn surface: the serial log of an instance's guest (what it printed since it last started).

The reference lists the paths without shapes; Cloudlet answers:
- GET /v1/instances/{id}/install-logs ("Install/startup logs"): {"instance_id", "logs": [lines], "truncated"}.
- GET /v1/instances/{id}/logs/history ("Log history"): {"instance_id", "logs": [lines], "total_lines",
  "truncated"}; `?lines=N` keeps the last N lines (all by default).
- GET /v1/instances/{id}/logs/download ("Download logs"): the log as text/plain, an attachment named
  <instance uuid>-serial.log.
The live log and the interactive console are websockets (instance_console.py). {id} is the instance's
uuid or numeric id.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from cloudlet.auth.caller import Caller
from cloudlet.instances import service as instances
from cloudlet.surfaces.deps import DbSession, requires
from cloudlet.tokens.abilities import Ability

router = APIRouter(prefix="/v1/instances", tags=["shardlyn"])

Reader = Annotated[Caller, requires(Ability.INSTANCES_READ)]


class InstallLogsRead(BaseModel):
    """The serial console, line by line."""

    instance_id: str
    logs: list[str]
    truncated: bool


@router.get("/{instance_id}/install-logs", response_model=InstallLogsRead,
            summary="The guest's serial console since it last started")
def install_logs(instance_id: str, caller: Reader, db: DbSession) -> InstallLogsRead:
    """What the guest printed on its serial console while it booted and applied its seed."""
    found = instances.console_log(db, caller, instance_id)
    return InstallLogsRead(instance_id=found.instance_uuid, logs=found.text.splitlines(), truncated=found.truncated)


class LogHistoryRead(BaseModel):
    """The serial log's last lines."""

    instance_id: str
    logs: list[str]
    total_lines: int
    truncated: bool


@router.get("/{instance_id}/logs/history", response_model=LogHistoryRead,
            summary="The serial log since the guest last started (its last lines with ?lines=N)")
def log_history(instance_id: str, caller: Reader, db: DbSession,
                lines: Annotated[int | None, Query(ge=1, le=100_000, description="Only the last N lines.")] = None,
                ) -> LogHistoryRead:
    """The serial log, line by line."""
    found = instances.console_log(db, caller, instance_id)
    every = found.text.splitlines()
    kept = every[-lines:] if lines is not None else every
    return LogHistoryRead(instance_id=found.instance_uuid, logs=kept, total_lines=len(every),
                          truncated=found.truncated or len(kept) < len(every))


@router.get("/{instance_id}/logs/download", response_class=PlainTextResponse,
            summary="The serial log as a text file")
def log_download(instance_id: str, caller: Reader, db: DbSession) -> PlainTextResponse:
    """The serial log since the guest last started, as an attachment."""
    found = instances.console_log(db, caller, instance_id)
    return PlainTextResponse(found.text, headers={
        "Content-Disposition": f'attachment; filename="{found.instance_uuid}-serial.log"',
        "Cache-Control": "no-store"})
