"""WaysCloud surface: POST /v1/vps/{vps_id}/start, /stop and /reboot.

    {"success": true, "action": "start", "message": "VPS is starting"}

Each answers 200 at once, as the reference's examples do, while the worker carries the action out;
GET /v1/vps/{vps_id} (and /status) show the VPS "starting" or "stopping" until it is "running" or
"stopped". The reference's examples for stop and reboot repeat the start answer word for word; Cloudlet
names the action it was asked for: {"action": "stop", "message": "VPS is stopping"} and
{"action": "reboot", "message": "VPS is rebooting"}.

`stop` is a graceful shutdown (ACPI) that ends in a power-off when the guest has not stopped within
the server's instance_shutdown_timeout_seconds; `reboot` is a graceful restart that ends once the
guest is back up. Errors are {"detail", "code"}: 409 INSTANCE_BUSY while another action holds the
VPS, 409 INVALID_STATE when its state does not allow the action (start while running), 403
VPS_SUSPENDED, 404 VPS_NOT_FOUND for a VPS that is not the caller's.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter
from pydantic import BaseModel

from cloudlet.auth.caller import Caller
from cloudlet.instances import power
from cloudlet.instances.schemas import Command
from cloudlet.surfaces.deps import DbSession, requires
from cloudlet.tokens.abilities import Ability

router = APIRouter(prefix="/v1/vps", tags=["wayscloud"])

Writer = Annotated[Caller, requires(Ability.INSTANCES_WRITE)]
WcAction = Literal["start", "stop", "reboot"]

COMMANDS: dict[WcAction, tuple[Command, str]] = {
    "start": (Command.BOOT, "VPS is starting"),
    "stop": (Command.SHUTDOWN, "VPS is stopping"),
    "reboot": (Command.RESTART, "VPS is rebooting"),
}


class WcPowerRead(BaseModel):
    """The answer to start, stop and reboot."""

    success: bool
    action: WcAction
    message: str


def _power(vps_id: str, action: WcAction, caller: Caller, db: DbSession) -> WcPowerRead:
    command, message = COMMANDS[action]
    power.request_power(db, caller, vps_id, command)
    return WcPowerRead(success=True, action=action, message=message)


@router.post("/{vps_id}/start", response_model=WcPowerRead, summary="Start VPS")
def start_vps(vps_id: str, caller: Writer, db: DbSession) -> WcPowerRead:
    """Power on a stopped VPS."""
    return _power(vps_id, "start", caller, db)


@router.post("/{vps_id}/stop", response_model=WcPowerRead, summary="Stop VPS")
def stop_vps(vps_id: str, caller: Writer, db: DbSession) -> WcPowerRead:
    """Gracefully shut down a running VPS (powered off if it ignores the request)."""
    return _power(vps_id, "stop", caller, db)


@router.post("/{vps_id}/reboot", response_model=WcPowerRead, summary="Reboot VPS")
def reboot_vps(vps_id: str, caller: Writer, db: DbSession) -> WcPowerRead:
    """Gracefully restart a running VPS."""
    return _power(vps_id, "reboot", caller, db)
