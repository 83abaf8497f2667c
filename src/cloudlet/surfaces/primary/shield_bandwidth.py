"""Primary surface: an IP record's bandwidth, GET /api/shield/ips/{id}/bandwidth?period=5m|30m|1h|6h|12h|24h.

    {"id", "ip", "instance_id", "period", "resolution",
     "cap_mbit" (the plan's cap each way, null: none), "effective_cap_mbit" (what the NIC has now: the transfer
     throttle's while throttled), "current": {"in_bps", "out_bps"} or null,
     "points": [{"timestamp", "in_bps", "out_bps"}],
     "transfer": {"month", "in_bytes", "out_bytes", "total_bytes", "quota_bytes", "used_percent", "warn_percent",
                  "state" (unlimited | ok | warned | throttled), "throttled_until"}}

The reference says only "Time-series of bps in/out": the series is the metrics history of the server that holds the
address (its NIC: "in" is to the guest), in bits per second, with the period and resolution of the primary metrics
endpoints (raw samples up to 1h, 5-minute averages beyond; a period outside the list is a 422); the caps and the
month's transfer are extensions. It needs analytics:read, as the reference assigns it; another project's address
is a 404.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from cloudlet.auth.caller import Caller
from cloudlet.kit.serial import IsoMillis
from cloudlet.metrics.schemas import Period
from cloudlet.shield import bandwidth
from cloudlet.shield.schemas import BandwidthNow, IpBandwidthRead, TransferRead
from cloudlet.surfaces.deps import AppSettings, DbSession, requires
from cloudlet.surfaces.params import PathId
from cloudlet.tokens.abilities import Ability

router = APIRouter(prefix="/api/shield", tags=["primary"])

Analyst = Annotated[Caller, requires(Ability.ANALYTICS_READ)]


class PrimaryBandwidthPoint(BaseModel):
    """Bits per second in and out over one history interval."""

    timestamp: IsoMillis
    in_bps: float
    out_bps: float


class PrimaryTransfer(TransferRead):
    """The month's transfer, its times in the primary surface's form."""

    throttled_until: IsoMillis | None


class PrimaryIpBandwidth(BaseModel):
    """GET /api/shield/ips/{id}/bandwidth."""

    id: int
    ip: str
    instance_id: str
    period: str
    resolution: str
    cap_mbit: int | None
    effective_cap_mbit: int | None
    current: BandwidthNow | None
    points: list[PrimaryBandwidthPoint]
    transfer: PrimaryTransfer

    @classmethod
    def of(cls, found: IpBandwidthRead) -> PrimaryIpBandwidth:
        """The primary shape."""
        return cls(**found.model_dump(exclude={"points", "transfer"}),
                   points=[PrimaryBandwidthPoint(timestamp=p.at, in_bps=p.in_bps, out_bps=p.out_bps)
                           for p in found.points],
                   transfer=PrimaryTransfer(**found.transfer.model_dump()))


@router.get("/ips/{ip_id}/bandwidth", response_model=PrimaryIpBandwidth, summary="Bandwidth of an IP record")
def ip_bandwidth(ip_id: PathId, caller: Analyst, db: DbSession, settings: AppSettings,
                 period: Annotated[Period, Query(description="How far back the series goes.")] = Period.HOUR_1
                 ) -> PrimaryIpBandwidth:
    """Bits per second in and out over the period, the server's caps and its month's transfer against its plan."""
    return PrimaryIpBandwidth.of(bandwidth.ip_bandwidth(db, settings, caller, ip_id, period))
