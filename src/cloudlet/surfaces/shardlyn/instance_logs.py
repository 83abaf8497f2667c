"""Shardlyn surface: GET /v1/instances/{id}/install-logs, the guest's serial console since it last started.

The reference lists the path ("Install/startup logs") without a shape; Cloudlet answers
{"instance_id", "logs": [lines], "truncated"}. {id} is the instance's uuid or numeric id.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
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
