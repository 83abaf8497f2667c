"""Primary surface: GET /api/instances/{id}/metrics?period=5m|30m|1h|6h|12h|24h (Evorxa's "metrics").

    {"current": {"cpu_percent", "memory_used_kb", "memory_total_kb", "disk_used_bytes", "disk_total_bytes",
                 "network_rx_bytes", "network_tx_bytes", ...},
     "history": [Point], "period", "resolution"}

`current` is read from the node when asked; its fields are the reference's plus Cloudlet's extensions:
"state" (the hypervisor's power state; "unknown" when the node does not answer, then the readings are
null), the cumulative "disk_read_bytes"/"disk_write_bytes", per-second rates "disk_read_bytes_per_sec",
"disk_write_bytes_per_sec", "network_rx_bytes_per_sec", "network_tx_bytes_per_sec" (and cpu_percent)
over the last "rates_seconds" (since the sampler's last reading, or a fresh quarter-second one),
"uptime_seconds" and "sampled_at". network_*_bytes are totals since the guest started; memory_used_kb
is null when the guest has no balloon driver; disk_used_bytes is what the disk takes on the node.

The reference leaves history points unspecified: each is {"timestamp", "cpu_percent", "memory_used_kb",
"memory_total_kb", "disk_used_bytes", "disk_total_bytes", "disk_read_bytes_per_sec",
"disk_write_bytes_per_sec", "network_rx_bytes_per_sec", "network_tx_bytes_per_sec", "seconds"}, oldest
first: raw samples (every minute by default) for 5m, 30m and 1h ("resolution": "raw", "timestamp" the
sample's time), 5-minute averages for 6h, 12h and 24h ("resolution": "5m", "timestamp" the bucket's
start). A period outside the list is a 422. It needs the analytics:read ability, as the reference says.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from cloudlet.auth.caller import Caller
from cloudlet.kit.serial import IsoMillis
from cloudlet.metrics import service as metrics
from cloudlet.metrics.models import Resolution
from cloudlet.metrics.schemas import InstanceMetrics, LiveMetrics, MetricPointRead, Period
from cloudlet.surfaces.deps import AppRuntime, DbSession, requires
from cloudlet.tokens.abilities import Ability

router = APIRouter(prefix="/api", tags=["primary"])

Analyst = Annotated[Caller, requires(Ability.ANALYTICS_READ)]


def _kib(mib: int | None) -> int | None:
    return mib * 1024 if mib is not None else None


class MetricsCurrent(BaseModel):
    """The reference's snapshot and Cloudlet's additions."""

    cpu_percent: float | None
    memory_used_kb: int | None
    memory_total_kb: int
    disk_used_bytes: int | None
    disk_total_bytes: int
    network_rx_bytes: int | None
    network_tx_bytes: int | None
    state: str
    vcpus: int
    disk_read_bytes: int | None
    disk_write_bytes: int | None
    disk_read_bytes_per_sec: float | None
    disk_write_bytes_per_sec: float | None
    network_rx_bytes_per_sec: float | None
    network_tx_bytes_per_sec: float | None
    rates_seconds: float | None
    uptime_seconds: int
    sampled_at: IsoMillis | None

    @classmethod
    def of(cls, live: LiveMetrics) -> MetricsCurrent:
        """The primary shape of a live reading."""
        return cls(cpu_percent=live.cpu_percent, memory_used_kb=_kib(live.memory_used_mib),
                   memory_total_kb=live.memory_mib * 1024, disk_used_bytes=live.disk_used_bytes,
                   disk_total_bytes=live.disk_total_bytes, network_rx_bytes=live.net_rx_bytes,
                   network_tx_bytes=live.net_tx_bytes, state=live.state, vcpus=live.vcpus,
                   disk_read_bytes=live.disk_read_bytes, disk_write_bytes=live.disk_write_bytes,
                   disk_read_bytes_per_sec=live.disk_read_bps, disk_write_bytes_per_sec=live.disk_write_bps,
                   network_rx_bytes_per_sec=live.net_rx_bps, network_tx_bytes_per_sec=live.net_tx_bps,
                   rates_seconds=live.rates_seconds, uptime_seconds=live.uptime_seconds, sampled_at=live.sampled_at)


class MetricsPoint(BaseModel):
    """One history point."""

    timestamp: IsoMillis
    cpu_percent: float
    memory_used_kb: int | None
    memory_total_kb: int
    disk_used_bytes: int
    disk_total_bytes: int
    disk_read_bytes_per_sec: float
    disk_write_bytes_per_sec: float
    network_rx_bytes_per_sec: float
    network_tx_bytes_per_sec: float
    seconds: float

    @classmethod
    def of(cls, point: MetricPointRead) -> MetricsPoint:
        """The primary shape of a history point."""
        return cls(timestamp=point.at, cpu_percent=point.cpu_percent, memory_used_kb=_kib(point.memory_used_mib),
                   memory_total_kb=point.memory_mib * 1024, disk_used_bytes=point.disk_used_bytes,
                   disk_total_bytes=point.disk_total_bytes, disk_read_bytes_per_sec=round(point.disk_read_bps, 1),
                   disk_write_bytes_per_sec=round(point.disk_write_bps, 1),
                   network_rx_bytes_per_sec=round(point.net_rx_bps, 1),
                   network_tx_bytes_per_sec=round(point.net_tx_bps, 1), seconds=round(point.seconds, 3))


class MetricsRead(BaseModel):
    """GET /api/instances/{id}/metrics."""

    current: MetricsCurrent
    history: list[MetricsPoint]
    period: Period
    resolution: Resolution

    @classmethod
    def of(cls, found: InstanceMetrics) -> MetricsRead:
        """The primary shape of an instance's metrics."""
        return cls(current=MetricsCurrent.of(found.current), history=[MetricsPoint.of(p) for p in found.history],
                   period=found.period, resolution=found.resolution)


@router.get("/instances/{instance_id}/metrics", response_model=MetricsRead,
            summary="Live snapshot from the hypervisor plus stored history for the period")
def instance_metrics(instance_id: str, caller: Analyst, db: DbSession, runtime: AppRuntime,
                     period: Annotated[Period, Query(description="How far back the history goes.")] = Period.HOUR_1
                     ) -> MetricsRead:
    """CPU, memory, disk and network now, and their history (raw up to 1h, 5-minute averages beyond)."""
    return MetricsRead.of(metrics.instance_metrics(db, runtime.drivers, caller, instance_id, period))
