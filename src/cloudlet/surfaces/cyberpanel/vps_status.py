"""CyberPanel surface: GET /api/v1/vps/{id}/status, the VPS's live status read from its node.

    {"success": true, "data": {"vps_id", "vmid", "name", "status", "qmpstatus",
      "cpu": {"usage_percent", "cores"}, "memory": {"used_bytes", "total_bytes", "usage_percent"},
      "disk": {"read_bytes", "write_bytes"}, "network": {"in_bytes", "out_bytes"}, "uptime_seconds", "pid"}}

Where the reference is silent, Cloudlet chooses:
- `status` is the VPS's status as /vps/{id} shows it; `qmpstatus` is the hypervisor's power state
  (running, stopped, paused, crashed, ...), "missing" when the node has no such guest and "unknown" when
  the VPS has no node yet or its node does not answer (then the readings are null, not a 500).
- `cpu.usage_percent` is of the VPS's cores, over the time since the sampler last read it (a minute
  by default) or a fresh quarter-second reading; disk and network bytes are totals since the guest
  started; memory.used_bytes is null when the guest has no balloon driver.
- `pid` is always null: the QEMU process id is the hypervisor's and never leaves the node.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel

from cloudlet.auth.caller import Caller
from cloudlet.metrics import service as metrics
from cloudlet.metrics.schemas import InstanceLive
from cloudlet.surfaces.cyberpanel.errors import envelope
from cloudlet.surfaces.cyberpanel.vps_schemas import cp_status, vmid
from cloudlet.surfaces.deps import AppRuntime, DbSession, requires
from cloudlet.tokens.abilities import Ability

router = APIRouter(prefix="/api/v1/vps", tags=["cyberpanel"])

VpsReader = Annotated[Caller, requires(Ability.INSTANCES_READ)]
MIB = 1024 * 1024


class CpCpu(BaseModel):
    """Processor use."""

    usage_percent: float | None
    cores: int


class CpMemory(BaseModel):
    """Memory use."""

    used_bytes: int | None
    total_bytes: int
    usage_percent: float | None


class CpDisk(BaseModel):
    """Disk traffic since the guest started."""

    read_bytes: int | None
    write_bytes: int | None


class CpNetwork(BaseModel):
    """Network traffic since the guest started."""

    in_bytes: int | None
    out_bytes: int | None


class CpVpsStatus(BaseModel):
    """GET /api/v1/vps/{id}/status's data."""

    vps_id: int
    vmid: int
    name: str
    status: str
    qmpstatus: str
    cpu: CpCpu
    memory: CpMemory
    disk: CpDisk
    network: CpNetwork
    uptime_seconds: int
    pid: int | None = None

    @classmethod
    def of(cls, found: InstanceLive) -> CpVpsStatus:
        """CyberPanel's shape of a live reading."""
        live = found.current
        return cls(vps_id=found.id, vmid=vmid(found.id), name=found.name, status=cp_status(found.status),
                   qmpstatus=live.state, cpu=CpCpu(usage_percent=live.cpu_percent, cores=live.vcpus),
                   memory=CpMemory(used_bytes=live.memory_used_mib * MIB if live.memory_used_mib is not None else None,
                                   total_bytes=live.memory_mib * MIB, usage_percent=live.memory_percent),
                   disk=CpDisk(read_bytes=live.disk_read_bytes, write_bytes=live.disk_write_bytes),
                   network=CpNetwork(in_bytes=live.net_rx_bytes, out_bytes=live.net_tx_bytes),
                   uptime_seconds=live.uptime_seconds)


@router.get("/{vps_id}/status", summary="Get VPS Live Status")
def vps_status(vps_id: str, caller: VpsReader, db: DbSession, runtime: AppRuntime) -> dict[str, Any]:
    """Real-time metrics of the VPS, read from its node."""
    return envelope(CpVpsStatus.of(metrics.instance_live(db, runtime.drivers, caller, vps_id)).model_dump(mode="json"))
