"""CyberPanel surface: POST /api/v1/vps/{id}/start, /stop and /restart.

The reference answers with the VPS in its final status and "VPS started successfully", so these
endpoints wait for the action to end before answering, for at most the server's
instance_power_wait_seconds (45 s by default):

- the action succeeded: 200, `status` is "running" (start, restart) or "stopped" (stop), and the
  reference's message ("VPS started successfully", "VPS stopped successfully", "VPS restarted
  successfully");
- it is still running when the wait ends: 200 with the transitional status ("starting", "stopping",
  "restarting") and "VPS is starting" (or stopping, restarting); GET /api/v1/vps/{id} tells the rest;
- it failed: 500 START_FAILED, STOP_FAILED or RESTART_FAILED (the reference's codes) with the reason.

`stop` is a graceful shutdown (ACPI) that ends in a power-off when the guest has not stopped within
the server's instance_shutdown_timeout_seconds. Refusals: 409 INSTANCE_BUSY while another action
holds the VPS, 409 INVALID_STATE when its state does not allow the command (start while running),
403 VPS_SUSPENDED, 404 VPS_NOT_FOUND for a VPS that is not the caller's.

The wait happens after the request's transaction has committed (the action's workflow cannot start
before): FastAPI closes the request's session when the endpoint returns, before it calls the
response, and SettledAnswer does its waiting when it is called.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.responses import Response

from cloudlet.auth.caller import Caller
from cloudlet.instances import power
from cloudlet.instances.models import ActionStatus
from cloudlet.instances.schemas import Command
from cloudlet.surfaces.cyberpanel.errors import envelope, render
from cloudlet.surfaces.cyberpanel.vps_schemas import cp_status, vmid
from cloudlet.surfaces.deps import AppRuntime, DbSession, requires
from cloudlet.surfaces.errors import Problem
from cloudlet.surfaces.settled import SettledAnswer
from cloudlet.tokens.abilities import Ability

router = APIRouter(prefix="/api/v1/vps", tags=["cyberpanel"])

VpsWriter = Annotated[Caller, requires(Ability.INSTANCES_WRITE)]


@dataclass(frozen=True)
class Wording:
    """What CyberPanel says of one action (power, snapshot, rebuild): done, still going, failed."""

    done: str
    going: str
    failed_code: str
    failed: str


WORDING = {
    Command.BOOT: Wording("VPS started successfully", "VPS is starting", "START_FAILED", "Failed to start VPS"),
    Command.SHUTDOWN: Wording("VPS stopped successfully", "VPS is stopping", "STOP_FAILED", "Failed to stop VPS"),
    Command.RESTART: Wording("VPS restarted successfully", "VPS is restarting", "RESTART_FAILED",
                             "Failed to restart VPS"),
}


class CpVpsPower(BaseModel):
    """The VPS after a start, stop or restart, as the reference shows it."""

    id: int
    vmid: int
    name: str
    status: str
    ip_address: str | None


def _answer(found: power.PowerRead, command: Command) -> Response:
    words = WORDING[command]
    if found.action.status is ActionStatus.ERROR:
        return render(Problem(500, words.failed_code, f"{words.failed}: {found.action.error}"))
    row = found.instance
    data = CpVpsPower(id=row.id, vmid=vmid(row.id), name=row.name, status=cp_status(row.status), ip_address=row.ipv4)
    message = words.done if found.action.status is ActionStatus.SUCCESS else words.going
    return JSONResponse(envelope(data.model_dump(mode="json"), message))


def _power(vps_id: str, command: Command, caller: Caller, db: DbSession, runtime: AppRuntime) -> SettledAnswer:
    started = power.request_power(db, caller, vps_id, command)
    wait = runtime.settings.instance_power_wait_seconds
    return SettledAnswer(lambda: _answer(power.settle(runtime.db, caller, started, wait), command))


@router.post("/{vps_id}/start", summary="Start VPS (answers once it runs, or after a bounded wait)")
def start_vps(vps_id: str, caller: VpsWriter, db: DbSession, runtime: AppRuntime) -> Response:
    """Boot the VPS and wait for it to run."""
    return _power(vps_id, Command.BOOT, caller, db, runtime)


@router.post("/{vps_id}/stop", summary="Stop VPS (graceful; powered off if the guest ignores it)")
def stop_vps(vps_id: str, caller: VpsWriter, db: DbSession, runtime: AppRuntime) -> Response:
    """Shut the VPS down and wait for it to stop."""
    return _power(vps_id, Command.SHUTDOWN, caller, db, runtime)


@router.post("/{vps_id}/restart", summary="Restart VPS (answers once it is back, or after a bounded wait)")
def restart_vps(vps_id: str, caller: VpsWriter, db: DbSession, runtime: AppRuntime) -> Response:
    """Restart the VPS and wait for it to be back."""
    return _power(vps_id, Command.RESTART, caller, db, runtime)
