"""Shardlyn surface: the serial log of an instance's guest: what it printed since it last started, and across boots.

The reference lists the paths without shapes; Cloudlet answers:
- GET /v1/instances/{id}/install-logs ("Install/startup logs"): the current boot's log,
  {"instance_id", "logs": [lines], "truncated"}.
- GET /v1/instances/{id}/logs/history ("Log history"): the log across boots, oldest first (the node keeps the
  last MiB; each boot after the first begins with a line `-- cloudlet: guest rebooted at <UTC time> --`, or
  started / restored from a snapshot), {"instance_id", "logs": [lines], "total_lines", "truncated"};
  `?lines=N` keeps the last N lines (all by default).
- GET /v1/instances/{id}/logs/download ("Download logs"): the same history as text/plain, an attachment named
  <instance uuid>-serial.log.
- DELETE /v1/instances/{id}/logs/clear ("Clear logs", administrators): forgets the history and the current
  boot's log; 204. A non-administrator gets 403 for an instance of theirs (404 for anyone else's, as
  everywhere), and 409 while an action holds the instance.
The live log and the interactive console are websockets (instance_console.py). {id} is the instance's
uuid or numeric id.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from cloudlet.auth.caller import Caller
from cloudlet.instances import service as instances
from cloudlet.surfaces.deps import AppRuntime, DbSession, requires
from cloudlet.tokens.abilities import Ability

router = APIRouter(prefix="/v1/instances", tags=["shardlyn"])

Reader = Annotated[Caller, requires(Ability.INSTANCES_READ)]
Writer = Annotated[Caller, requires(Ability.INSTANCES_WRITE)]


class InstallLogsRead(BaseModel):
    """The serial console, line by line."""

    instance_id: str
    logs: list[str]
    truncated: bool


@router.get("/{instance_id}/install-logs", response_model=InstallLogsRead,
            summary="The guest's serial console since it last started")
def install_logs(instance_id: str, caller: Reader, db: DbSession, runtime: AppRuntime) -> InstallLogsRead:
    """What the guest printed on its serial console while it booted and applied its seed."""
    found = instances.console_log(db, runtime.drivers, caller, instance_id)
    return InstallLogsRead(instance_id=found.instance_uuid, logs=found.text.splitlines(), truncated=found.truncated)


class LogHistoryRead(BaseModel):
    """The serial log across boots, or its last lines."""

    instance_id: str
    logs: list[str]
    total_lines: int
    truncated: bool


@router.get("/{instance_id}/logs/history", response_model=LogHistoryRead,
            summary="The serial log across the guest's boots (its last lines with ?lines=N)")
def log_history(instance_id: str, caller: Reader, db: DbSession, runtime: AppRuntime,
                lines: Annotated[int | None, Query(ge=1, le=100_000, description="Only the last N lines.")] = None,
                ) -> LogHistoryRead:
    """The serial log across boots, line by line, oldest first."""
    found = instances.console_history(db, runtime.drivers, caller, instance_id)
    every = found.text.splitlines()
    kept = every[-lines:] if lines is not None else every
    return LogHistoryRead(instance_id=found.instance_uuid, logs=kept, total_lines=len(every),
                          truncated=found.truncated or len(kept) < len(every))


@router.get("/{instance_id}/logs/download", response_class=PlainTextResponse,
            summary="The serial log across the guest's boots as a text file")
def log_download(instance_id: str, caller: Reader, db: DbSession, runtime: AppRuntime) -> PlainTextResponse:
    """The serial log across boots, as an attachment."""
    found = instances.console_history(db, runtime.drivers, caller, instance_id)
    return PlainTextResponse(found.text, headers={
        "Content-Disposition": f'attachment; filename="{found.instance_uuid}-serial.log"',
        "Cache-Control": "no-store"})


@router.delete("/{instance_id}/logs/clear", status_code=204, response_class=Response,
               summary="Clear the serial log and its history (administrators)")
def log_clear(instance_id: str, caller: Writer, db: DbSession, runtime: AppRuntime) -> Response:
    """Forget what the guest printed, past boots and the current one."""
    instances.clear_console_log(db, runtime.drivers, caller, instance_id, operator=caller.is_admin)
    return Response(status_code=204)
