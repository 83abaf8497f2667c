"""Primary surface: POST /api/instances/{id}/power/{boot|shutdown|restart|poweroff} (Evorxa's power endpoint).

The command is dispatched at once (200): the answer is the instance in its transitional status
(boot: "starting", shutdown and poweroff: "stopping", restart: "restarting") with the action that
carries the command out; GET /api/instances/{id}/actions shows its tasks. When the action ends, the
status is what the hypervisor says ("running" or "stopped"). A shutdown that the guest ignores ends in
a power-off after the server's instance_shutdown_timeout_seconds.

Refusals: 409 while another action holds the instance (INSTANCE_BUSY) or when its state does not
allow the command, e.g. boot while running (INVALID_STATE); 403 while it is suspended (VPS_SUSPENDED);
404 for an instance of another project.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path

from cloudlet.auth.caller import Caller
from cloudlet.instances import power
from cloudlet.instances.schemas import Command
from cloudlet.surfaces.deps import DbSession, requires
from cloudlet.surfaces.primary.instance_schemas import PrimaryActionRead, PrimaryInstanceRead
from cloudlet.tokens.abilities import Ability

router = APIRouter(prefix="/api", tags=["primary"])

Writer = Annotated[Caller, requires(Ability.INSTANCES_WRITE)]
PowerAction = Literal["boot", "shutdown", "restart", "poweroff"]


class PrimaryPowerRead(PrimaryInstanceRead):
    """The instance in its transitional status, and the action that carries the command out."""

    action: PrimaryActionRead

    @classmethod
    def of_power(cls, found: power.PowerRead) -> PrimaryPowerRead:
        """The primary rendering of a dispatched power command."""
        return cls(**PrimaryInstanceRead.of(found.instance).model_dump(exclude={"action"}),
                   action=PrimaryActionRead.of(found.action))


@router.post("/instances/{instance_id}/power/{action}", response_model=PrimaryPowerRead,
             summary="Boot, shutdown, restart, or hard power-off")
def power_action(instance_id: str,
                 action: Annotated[PowerAction, Path(description="boot · shutdown · restart · poweroff")],
                 caller: Writer, db: DbSession) -> PrimaryPowerRead:
    """Dispatch the command; the status moves to a transitional state and syncs from the hypervisor."""
    return PrimaryPowerRead.of_power(power.request_power(db, caller, instance_id, Command(action)))
