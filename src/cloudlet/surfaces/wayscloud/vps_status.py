"""WaysCloud surface: GET /v1/vps/{vps_id}/status, power state, uptime and use, read from the VPS's node.

    {"status", "uptime_seconds", "cpu_usage_percent", "memory_usage_percent", "disk_usage_percent",
     "network_in_bytes", "network_out_bytes"}

Choices where the reference is silent:
- `status` is the power state in WaysCloud's words: provisioning while the VPS is built, starting and
  stopping while an action moves it, else what the hypervisor says (running; stopped for a guest that
  is off, paused or crashed). When the node does not answer it falls back on the VPS's recorded
  status, and the readings are null.
- `uptime_seconds` counts from the guest's last start as Cloudlet knows it: the end of the action that
  last started or restarted it, or the first sample that found it running after it was off (a start
  behind Cloudlet's back), whichever is later; 0 while it is off.
- `cpu_usage_percent` is of the VPS's vCPUs over the last sampling interval (a minute by default) or a
  fresh quarter-second reading; `memory_usage_percent` is null without a balloon driver in the guest;
  `disk_usage_percent` is what the disk takes on the node against its size; network bytes are totals
  since the guest started.
- Traffic: the network bytes are the same NIC counters whose rates Shield's bandwidth series shows
  (/api/shield/ips/{id}/bandwidth, where the month's transfer and the plan's cap are too); the reference gives
  a VPS no firewall, so Shield's rules are on the primary surface only.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel

from cloudlet.auth.caller import Caller
from cloudlet.instances.models import InstanceStatus
from cloudlet.metrics import service as metrics
from cloudlet.metrics.schemas import InstanceLive
from cloudlet.surfaces.deps import AppRuntime, DbSession, requires
from cloudlet.tokens.abilities import Ability

router = APIRouter(prefix="/v1/vps", tags=["wayscloud"])

Reader = Annotated[Caller, requires(Ability.INSTANCES_READ)]

MOVING = {InstanceStatus.PROVISIONING: "provisioning", InstanceStatus.STARTING: "starting",
          InstanceStatus.RESTARTING: "starting", InstanceStatus.STOPPING: "stopping",
          InstanceStatus.DELETING: "stopping"}
POWER = {"running": "running", "starting": "starting", "stopping": "stopping", "stopped": "stopped",
         "paused": "stopped", "crashed": "stopped"}
RECORDED = {InstanceStatus.RUNNING: "running", InstanceStatus.STOPPED: "stopped", InstanceStatus.SUSPENDED: "stopped"}


def power_word(found: InstanceLive) -> str:
    """The VPS's power state in WaysCloud's words."""
    if found.status in MOVING:
        return MOVING[found.status]
    if found.current.state in POWER:
        return POWER[found.current.state]
    return RECORDED.get(found.status, found.status.value)


class WcVpsStatus(BaseModel):
    """GET /v1/vps/{vps_id}/status."""

    status: str
    uptime_seconds: int
    cpu_usage_percent: float | None
    memory_usage_percent: float | None
    disk_usage_percent: float | None
    network_in_bytes: int | None
    network_out_bytes: int | None

    @classmethod
    def of(cls, found: InstanceLive) -> WcVpsStatus:
        """WaysCloud's shape of a live reading."""
        live = found.current
        return cls(status=power_word(found), uptime_seconds=live.uptime_seconds, cpu_usage_percent=live.cpu_percent,
                   memory_usage_percent=live.memory_percent, disk_usage_percent=live.disk_percent,
                   network_in_bytes=live.net_rx_bytes, network_out_bytes=live.net_tx_bytes)


@router.get("/{vps_id}/status", response_model=WcVpsStatus, summary="Get status")
def vps_status(vps_id: str, caller: Reader, db: DbSession, runtime: AppRuntime) -> WcVpsStatus:
    """Power state (running/stopped), uptime, and health indicators."""
    return WcVpsStatus.of(metrics.instance_live(db, runtime.drivers, caller, vps_id))
