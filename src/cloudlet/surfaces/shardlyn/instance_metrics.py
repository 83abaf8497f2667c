"""Shardlyn surface: an instance's real-time stats and its metrics history.

The reference lists the paths without shapes; these follow Shardlyn's other objects (string ids,
timestamps in seconds with Z, lists under a key, {"error": message} with invalid input as 400).

    GET /v1/instances/{id}/stats
        {"instance_id", "state", "status", "sampled_at", "uptime_seconds", "cpu": {"percent", "vcpus"},
         "memory": {"used_bytes", "total_bytes", "percent"},
         "disk": {"used_bytes", "total_bytes", "read_bytes", "write_bytes", "read_bytes_per_sec",
                  "write_bytes_per_sec"},
         "network": {"rx_bytes", "tx_bytes", "rx_bytes_per_sec", "tx_bytes_per_sec"}}
    GET /v1/instances/{id}/metrics/history?period=5m|30m|1h|6h|12h|24h (default 1h)
        {"instance_id", "period", "resolution" ("raw" | "5m"), "points": [{"timestamp", "cpu_percent",
         "memory_used_bytes", "memory_total_bytes", "disk_used_bytes", "disk_total_bytes",
         "disk_read_bytes_per_sec", "disk_write_bytes_per_sec", "network_rx_bytes_per_sec",
         "network_tx_bytes_per_sec"}]}, oldest first

`state` is the hypervisor's power state ("missing" when the node has no such guest, "unknown" when the
instance has no node or its node does not answer: then the readings are null). Byte totals count
from the guest's start; rates and cpu percent cover the time since the sampler's last reading (a
minute by default) or a fresh quarter-second one. History is raw samples up to 1h and 5-minute
averages beyond. {id} is the instance's uuid or numeric id; another organization's instance is a 404.
The network figures are the same NIC counters as Shield's bandwidth series on the primary surface (its
/api/shield/ips/{id}/bandwidth, in bits rather than bytes); the reference gives an instance no firewall, and a
node's own firewall is /v1/nodes/{id}/firewall/rules.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from cloudlet.auth.caller import Caller
from cloudlet.kit.serial import IsoSeconds
from cloudlet.metrics import service as metrics
from cloudlet.metrics.models import Resolution
from cloudlet.metrics.schemas import InstanceHistory, InstanceLive, MetricPointRead, Period
from cloudlet.surfaces.deps import AppRuntime, DbSession, requires
from cloudlet.tokens.abilities import Ability

router = APIRouter(prefix="/v1/instances", tags=["shardlyn"])

Reader = Annotated[Caller, requires(Ability.INSTANCES_READ)]
MIB = 1024 * 1024


def _bytes(mib: int | None) -> int | None:
    return mib * MIB if mib is not None else None


class StatsCpu(BaseModel):
    """Processor use."""

    percent: float | None
    vcpus: int


class StatsMemory(BaseModel):
    """Memory use."""

    used_bytes: int | None
    total_bytes: int
    percent: float | None


class StatsDisk(BaseModel):
    """Disk size, use and traffic."""

    used_bytes: int | None
    total_bytes: int
    read_bytes: int | None
    write_bytes: int | None
    read_bytes_per_sec: float | None
    write_bytes_per_sec: float | None


class StatsNetwork(BaseModel):
    """Network traffic."""

    rx_bytes: int | None
    tx_bytes: int | None
    rx_bytes_per_sec: float | None
    tx_bytes_per_sec: float | None


class InstanceStatsRead(BaseModel):
    """GET /v1/instances/{id}/stats."""

    instance_id: str
    status: str
    state: str
    sampled_at: IsoSeconds | None
    uptime_seconds: int
    cpu: StatsCpu
    memory: StatsMemory
    disk: StatsDisk
    network: StatsNetwork

    @classmethod
    def of(cls, found: InstanceLive) -> InstanceStatsRead:
        """Shardlyn's shape of a live reading."""
        live = found.current
        return cls(instance_id=found.uuid, status=found.status.value, state=live.state, sampled_at=live.sampled_at,
                   uptime_seconds=live.uptime_seconds, cpu=StatsCpu(percent=live.cpu_percent, vcpus=live.vcpus),
                   memory=StatsMemory(used_bytes=_bytes(live.memory_used_mib), total_bytes=live.memory_mib * MIB,
                                      percent=live.memory_percent),
                   disk=StatsDisk(used_bytes=live.disk_used_bytes, total_bytes=live.disk_total_bytes,
                                  read_bytes=live.disk_read_bytes, write_bytes=live.disk_write_bytes,
                                  read_bytes_per_sec=live.disk_read_bps, write_bytes_per_sec=live.disk_write_bps),
                   network=StatsNetwork(rx_bytes=live.net_rx_bytes, tx_bytes=live.net_tx_bytes,
                                        rx_bytes_per_sec=live.net_rx_bps, tx_bytes_per_sec=live.net_tx_bps))


class HistoryPoint(BaseModel):
    """One point of history."""

    timestamp: IsoSeconds
    cpu_percent: float
    memory_used_bytes: int | None
    memory_total_bytes: int
    disk_used_bytes: int
    disk_total_bytes: int
    disk_read_bytes_per_sec: float
    disk_write_bytes_per_sec: float
    network_rx_bytes_per_sec: float
    network_tx_bytes_per_sec: float

    @classmethod
    def of(cls, point: MetricPointRead) -> HistoryPoint:
        """Shardlyn's shape of a history point."""
        return cls(timestamp=point.at, cpu_percent=point.cpu_percent, memory_used_bytes=_bytes(point.memory_used_mib),
                   memory_total_bytes=point.memory_mib * MIB, disk_used_bytes=point.disk_used_bytes,
                   disk_total_bytes=point.disk_total_bytes, disk_read_bytes_per_sec=round(point.disk_read_bps, 1),
                   disk_write_bytes_per_sec=round(point.disk_write_bps, 1),
                   network_rx_bytes_per_sec=round(point.net_rx_bps, 1),
                   network_tx_bytes_per_sec=round(point.net_tx_bps, 1))


class MetricsHistoryRead(BaseModel):
    """GET /v1/instances/{id}/metrics/history."""

    instance_id: str
    period: Period
    resolution: Resolution
    points: list[HistoryPoint]

    @classmethod
    def of(cls, found: InstanceHistory) -> MetricsHistoryRead:
        """Shardlyn's shape of an instance's history."""
        return cls(instance_id=found.uuid, period=found.period, resolution=found.resolution,
                   points=[HistoryPoint.of(p) for p in found.history])


@router.get("/{instance_id}/stats", response_model=InstanceStatsRead, summary="Real-time stats")
def instance_stats(instance_id: str, caller: Reader, db: DbSession, runtime: AppRuntime) -> InstanceStatsRead:
    """CPU, memory, disk and network of the instance's guest now, read from its node."""
    return InstanceStatsRead.of(metrics.instance_live(db, runtime.drivers, caller, instance_id))


@router.get("/{instance_id}/metrics/history", response_model=MetricsHistoryRead, summary="Metrics history")
def metrics_history(instance_id: str, caller: Reader, db: DbSession,
                    period: Annotated[Period, Query(description="How far back the history goes.")] = Period.HOUR_1
                    ) -> MetricsHistoryRead:
    """The instance's stored history over the period, oldest first."""
    return MetricsHistoryRead.of(metrics.instance_history(db, caller, instance_id, period))
