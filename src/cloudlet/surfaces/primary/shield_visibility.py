"""Primary surface: what reaches an IP record, at /api/shield/ips/{id}/visibility/* (Evorxa's visibility).

    GET .../visibility/top-ips?period=1h&by=bytes   {"period", "since", "total": {"packets", "bytes"},
                                                     "items": [{"ip", "packets", "bytes", "share", "country", "asn"}]}
    GET .../visibility/top-asns?period=1h           items: [{"asn", "name", "packets", "bytes", "share"}]
    GET .../visibility/countries?period=1h          items: [{"country", "name", "packets", "bytes", "share"}]
    GET .../visibility/ports?period=1h&by=bytes     items: [{"protocol", "port", "packets", "bytes", "share"}]
    GET .../visibility/pps?period=1h                {"period", "since", "points": [{"at", "seconds", "pps", "bps"}]}
    GET .../visibility/dropped?period=1h            items: [{"ip", "protocol", "port", "packets", "bytes"}]
                                                    (an extension: a sample of what the firewall dropped)

The reference names the views and nothing of their shape; these are ours. Figures come from the node's kernel
counters, sampled every minute (shield/visibility.py): `total` counts every inbound packet in the period, items
rank each reading's busiest sources and ports (up to 20), `share` is of the bytes ranked. `period` is one of the
metrics endpoints' (5m to 24h; another is a 422); `by` ranks by bytes (default) or packets. Country and ASN come
from the operator's MMDB files (CLOUDLET_GEOIP_COUNTRY_DB, CLOUDLET_GEOIP_ASN_DB): without the one a view needs,
top-asns and countries answer 501 saying so, and top-ips gives null for what it cannot name. Every address of a
server is counted, rules or none. Every view needs analytics:read, as the
reference assigns it; another project's address is a 404.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from cloudlet.auth.caller import Caller
from cloudlet.kit import clock
from cloudlet.kit.serial import IsoMillis
from cloudlet.metrics.schemas import Period
from cloudlet.shield import visibility
from cloudlet.shield.geoip import GeoIp
from cloudlet.shield.schemas import (
    CountryRead,
    DroppedRead,
    Hits,
    PortRead,
    PpsSeries,
    Ranking,
    RatePoint,
    SourceRead,
    SystemRead,
)
from cloudlet.surfaces.deps import AppSettings, DbSession, requires
from cloudlet.surfaces.params import PathId
from cloudlet.tokens.abilities import Ability

router = APIRouter(prefix="/api/shield/ips/{ip_id}/visibility", tags=["primary"])

Analyst = Annotated[Caller, requires(Ability.ANALYTICS_READ)]
PeriodQuery = Annotated[Period, Query(description="How far back the view looks.")]


class RankBy(StrEnum):
    """What a ranking orders by."""

    BYTES = "bytes"
    PACKETS = "packets"


ByQuery = Annotated[RankBy, Query(description="Rank by bytes or packets.")]


def geoip(settings: AppSettings) -> GeoIp:
    """The operator's GeoIP databases."""
    return GeoIp(settings.geoip_country_db, settings.geoip_asn_db)


Geo = Annotated[GeoIp, Depends(geoip)]


class _Window(BaseModel):
    period: str
    since: IsoMillis
    total: Hits


class Sources(_Window):
    """The busiest sources."""

    items: Sequence[SourceRead]


class Systems(_Window):
    """The busiest autonomous systems."""

    items: Sequence[SystemRead]


class Countries(_Window):
    """Countries' shares."""

    items: Sequence[CountryRead]


class Ports(_Window):
    """The most-hit ports."""

    items: Sequence[PortRead]


class Dropped(_Window):
    """What the firewall dropped."""

    items: Sequence[DroppedRead]


class PrimaryRatePoint(RatePoint):
    """One reading's rates."""

    at: IsoMillis


class PrimaryPps(BaseModel):
    """The packets-per-second series."""

    period: str
    since: IsoMillis
    points: Sequence[PrimaryRatePoint]


@router.get("/top-ips", response_model=Sources, summary="Top source IPs")
def top_ips(ip_id: PathId, caller: Analyst, db: DbSession, geo: Geo, period: PeriodQuery = Period.HOUR_1,
            by: ByQuery = RankBy.BYTES) -> Ranking[SourceRead]:
    """Ranked source addresses by bytes or packets, with their country and ASN where known."""
    return visibility.top_sources(db, geo, caller, ip_id, period, clock.now(), by_packets=by is RankBy.PACKETS)


@router.get("/top-asns", response_model=Systems, summary="Top source ASNs")
def top_asns(ip_id: PathId, caller: Analyst, db: DbSession, geo: Geo,
             period: PeriodQuery = Period.HOUR_1) -> Ranking[SystemRead]:
    """Ranked autonomous systems of the sources (501 without the ASN database)."""
    return visibility.top_systems(db, geo, caller, ip_id, period, clock.now())


@router.get("/countries", response_model=Countries, summary="Country share of incoming traffic")
def countries(ip_id: PathId, caller: Analyst, db: DbSession, geo: Geo,
              period: PeriodQuery = Period.HOUR_1) -> Ranking[CountryRead]:
    """The countries of the sources and their shares (501 without the country database)."""
    return visibility.countries(db, geo, caller, ip_id, period, clock.now())


@router.get("/ports", response_model=Ports, summary="Most-hit destination ports")
def ports(ip_id: PathId, caller: Analyst, db: DbSession, period: PeriodQuery = Period.HOUR_1,
          by: ByQuery = RankBy.BYTES) -> Ranking[PortRead]:
    """The address's TCP and UDP ports that received the most."""
    return visibility.ports(db, caller, ip_id, period, clock.now(), by_packets=by is RankBy.PACKETS)


@router.get("/pps", response_model=PrimaryPps, summary="Packets per second")
def pps(ip_id: PathId, caller: Analyst, db: DbSession, period: PeriodQuery = Period.HOUR_1) -> PpsSeries:
    """Inbound packets per second, a point a minute."""
    return visibility.pps(db, caller, ip_id, period, clock.now())


@router.get("/dropped", response_model=Dropped, summary="A sample of dropped packets")
def dropped(ip_id: PathId, caller: Analyst, db: DbSession,
            period: PeriodQuery = Period.HOUR_1) -> Ranking[DroppedRead]:
    """What the address's firewall dropped, by source and destination port (an extension)."""
    return visibility.dropped(db, caller, ip_id, period, clock.now())
