"""Shardlyn surface: POST /v1/instances/{id}/start, /stop, /restart and /kill.

The reference lists the paths without shapes. Each answers 202 Accepted at once with the instance
(its shape in /v1/instances) in its transitional status, "starting", "stopping" or "restarting",
plus "action_id", the id of the action the worker carries out; GET /v1/instances/{id} shows
"running" or "stopped" once it has ended.

- start boots the guest and ends once it is up; restart is a graceful reboot (ACPI) that ends once
  the guest is back;
- stop is a graceful shutdown (ACPI) that ends in a power-off when the guest has not stopped within
  the server's instance_shutdown_timeout_seconds;
- kill cuts the power at once (Shardlyn's SIGKILL of a virtual server).

Errors are {"error": message}: 409 while another action holds the instance or when its state does not
allow the command (start while running), 403 while it is suspended, 404 for an instance of an
organization the caller is not in.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from cloudlet.auth.caller import Caller
from cloudlet.instances import power
from cloudlet.instances.schemas import Command
from cloudlet.surfaces.deps import DbSession, requires
from cloudlet.surfaces.shardlyn.instance_schemas import ShardlynInstanceRead, instance_ident
from cloudlet.tokens.abilities import Ability

router = APIRouter(prefix="/v1/instances", tags=["shardlyn"])

Writer = Annotated[Caller, requires(Ability.INSTANCES_WRITE)]


class ShardlynPowerAccepted(ShardlynInstanceRead):
    """An instance in its transitional status, and the action that carries the command out."""

    action_id: str

    @classmethod
    def of_power(cls, found: power.PowerRead) -> ShardlynPowerAccepted:
        """Render a dispatched power command."""
        return cls(**ShardlynInstanceRead.of(found.instance).model_dump(), action_id=str(found.action.id))


def _power(instance_id: str, command: Command, caller: Caller, db: DbSession) -> ShardlynPowerAccepted:
    return ShardlynPowerAccepted.of_power(power.request_power(db, caller, instance_ident(instance_id), command))


@router.post("/{instance_id}/start", status_code=202, response_model=ShardlynPowerAccepted, summary="Start")
def start_instance(instance_id: str, caller: Writer, db: DbSession) -> ShardlynPowerAccepted:
    """Boot the instance."""
    return _power(instance_id, Command.BOOT, caller, db)


@router.post("/{instance_id}/stop", status_code=202, response_model=ShardlynPowerAccepted, summary="Stop")
def stop_instance(instance_id: str, caller: Writer, db: DbSession) -> ShardlynPowerAccepted:
    """Shut the instance down gracefully (powered off if it ignores the request)."""
    return _power(instance_id, Command.SHUTDOWN, caller, db)


@router.post("/{instance_id}/restart", status_code=202, response_model=ShardlynPowerAccepted, summary="Restart")
def restart_instance(instance_id: str, caller: Writer, db: DbSession) -> ShardlynPowerAccepted:
    """Restart the instance gracefully."""
    return _power(instance_id, Command.RESTART, caller, db)


@router.post("/{instance_id}/kill", status_code=202, response_model=ShardlynPowerAccepted,
             summary="Kill (power off at once)")
def kill_instance(instance_id: str, caller: Writer, db: DbSession) -> ShardlynPowerAccepted:
    """Cut the instance's power at once."""
    return _power(instance_id, Command.POWEROFF, caller, db)
