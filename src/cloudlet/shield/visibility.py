"""Visibility: what reaches each address, from its node's own counters (the `inet cloudlet` table counts every
inbound packet of an address and keeps per-source, per-port and dropped-packet sets with a counter on each
element: drivers' firewall_traffic).

A scheduled round (shield/workflows.py, CLOUDLET_SHIELD_VISIBILITY_SCHEDULE) reads every node and keeps, per
address, what arrived since its previous reading: the total, and the busiest sources, ports and drops of that
interval (TOP_* of each; quieter ones are not kept, so rankings are of the busy). Counters start from zero each
time a node's table is written, so a reading of a table written since the previous one counts from zero; the
first reading this process takes of a table counts everything since it was written, and its interval is
unknown, so it gives no rate. Samples are kept a day.

Every address of a node's guests is counted (each has its firewall in the node's table, rules or none).
"""

from __future__ import annotations

import ipaddress
import weakref
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import NamedTuple, TypeVar

import structlog
from sqlalchemy.orm import Session

from cloudlet.drivers.base import AddressTraffic, Counted, DriverError
from cloudlet.kit.db import Database
from cloudlet.metrics.schemas import Period
from cloudlet.nodes import service as nodes
from cloudlet.projects.schemas import Actor
from cloudlet.shield import repository, service
from cloudlet.shield.geoip import GeoIp
from cloudlet.shield.models import TrafficSample
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

log = structlog.get_logger(__name__)

TOP_SOURCES, TOP_PORTS, TOP_DROPS = 25, 10, 10
KEPT_FOR = timedelta(hours=25)
RANKED = 20
ALL, SOURCE, PORT, DROPPED = "all", "source", "port", "dropped"

# a node's driver -> address -> the last reading this process took of it
_readings: weakref.WeakKeyDictionary[object, dict[str, tuple[AddressTraffic, datetime]]] = \
    weakref.WeakKeyDictionary()
Key = TypeVar("Key")


def _since(now: Counted, before: Counted | None) -> Counted:
    if before is None or now.packets < before.packets or now.bytes < before.bytes:
        return now  # counted from zero since (a new table, or an element forgotten and seen again)
    return Counted(now.packets - before.packets, now.bytes - before.bytes)


def _busiest(now: dict[Key, Counted], before: dict[Key, Counted] | None, top: int) -> list[tuple[Key, Counted]]:
    moved = [(key, _since(counted, (before or {}).get(key))) for key, counted in now.items()]
    return sorted((item for item in moved if item[1].packets), key=lambda item: (-item[1].bytes, -item[1].packets)
                  )[:top]


def samples_between(allocation_id: int, now: AddressTraffic, before: tuple[AddressTraffic, datetime] | None,
                    at: datetime) -> list[TrafficSample]:
    """What reached an address between its previous reading (None: none this process took) and this one."""
    last = before[0] if before is not None and before[0].table == now.table else None
    seconds = (at - before[1]).total_seconds() if last is not None and before is not None else 0.0
    total = _since(now.total, last.total if last else None)
    if not total.packets:
        return []
    found = [TrafficSample(allocation_id=allocation_id, kind=ALL, key="", packets=total.packets, bytes=total.bytes,
                           seconds=seconds, sampled_at=at)]
    keyed: list[tuple[str, Iterable[tuple[str, Counted]]]] = [
        (SOURCE, _busiest(now.sources, last.sources if last else None, TOP_SOURCES)),
        (PORT, ((f"{protocol}/{port}", counted) for (protocol, port), counted in
                _busiest(now.ports, last.ports if last else None, TOP_PORTS))),
        (DROPPED, ((f"{source} {protocol}/{port}", counted) for (source, protocol, port), counted in
                   _busiest(now.dropped, last.dropped if last else None, TOP_DROPS)))]
    for kind, items in keyed:
        found.extend(TrafficSample(allocation_id=allocation_id, kind=kind, key=key, packets=counted.packets,
                                   bytes=counted.bytes, seconds=seconds, sampled_at=at) for key, counted in items)
    return found


def sample_node(db: Database, drivers: nodes.Drivers, node_id: int, at: datetime) -> int:
    """Read one node's counters and keep what reached each of its addresses since the last reading; the samples
    kept (none when the node does not answer: its next reading covers the gap)."""
    with db.session(write=False) as session:
        uri = nodes.get_node(session, node_id).uri
        addresses = service.node_addresses(session, node_id)
    if not addresses:
        return 0
    try:
        driver = drivers.connect(uri)
        readings = driver.firewall_traffic()
    except DriverError as error:
        log.warning("traffic counters not read", node_id=node_id, error=str(error))
        return 0
    last = _readings.setdefault(driver, {})
    for gone in [address for address in last if address not in readings]:
        del last[gone]  # an address the node no longer holds
    found: list[TrafficSample] = []
    for address, now in readings.items():
        allocation_id = addresses.get(address)
        if allocation_id is not None:
            found.extend(samples_between(allocation_id, now, last.get(address), at))
            last[address] = (now, at)
    with db.session() as session:
        repository.add_samples(session, found)
    return len(found)


def sample(db: Database, drivers: nodes.Drivers, at: datetime) -> int:
    """One round: every node read, and samples older than a day forgotten; the samples kept."""
    with db.session(write=False) as session:
        node_ids = [target.id for target in nodes.node_targets(session)]
    kept = sum(sample_node(db, drivers, node_id, at) for node_id in node_ids)
    with db.session() as session:
        repository.prune_samples(session, at - KEPT_FOR)
    return kept


# --- views ---------------------------------------------------------------------------------------------------


def _window(session: Session, actor: Actor, allocation_id: int, period: Period,
            now: datetime) -> tuple[int, datetime, Hits]:
    service.ip_record(session, actor, allocation_id)  # another project's address is not found
    since = now - period.span
    packets = size = 0
    for row in repository.samples(session, allocation_id, ALL, since):
        packets, size = packets + row.packets, size + row.bytes
    return allocation_id, since, Hits(packets=packets, bytes=size)


def _share(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def top_sources(session: Session, geoip: GeoIp, actor: Actor, allocation_id: int, period: Period, now: datetime,
                *, by_packets: bool = False) -> Ranking[SourceRead]:
    """The busiest source addresses in the period, with their country and ASN where the databases know them."""
    allocation_id, since, total = _window(session, actor, allocation_id, period, now)
    ranked = repository.ranked(session, allocation_id, SOURCE, since, by_packets=by_packets)
    whole = sum(size for _key, _packets, size in ranked)
    items = []
    for ip, packets, size in ranked[:RANKED]:
        country, system = geoip.country_of(ip), geoip.system_of(ip)
        items.append(SourceRead(ip=ip, packets=packets, bytes=size, share=_share(size, whole),
                                country=country.code if country else None, asn=system.number if system else None))
    return Ranking[SourceRead](period=period.value, since=since, total=total, items=items)


class _Place(NamedTuple):
    """Where the period's sources in one place (a country, an autonomous system) sent from."""

    key: int | str | None  # None: the sources the database does not place
    name: str
    packets: int
    bytes: int
    share: float


def _by_place(session: Session, actor: Actor, allocation_id: int, period: Period, now: datetime,
              place: Callable[[str], tuple[int | str, str] | None]) -> tuple[datetime, Hits, list[_Place]]:
    """Every source of the period folded by where place puts it, busiest first."""
    allocation_id, since, total = _window(session, actor, allocation_id, period, now)
    folded: dict[int | str | None, tuple[str, int, int]] = {}
    for ip, packets, size in repository.ranked(session, allocation_id, SOURCE, since):
        key, name = place(ip) or (None, "unknown")
        _name, before_packets, before_bytes = folded.get(key, (name, 0, 0))
        folded[key] = (name, before_packets + packets, before_bytes + size)
    whole = sum(size for _name, _packets, size in folded.values())
    places = sorted((_Place(key, name, packets, size, _share(size, whole))
                     for key, (name, packets, size) in folded.items()),
                    key=lambda found: (-found.bytes, -found.packets, str(found.key)))
    return since, total, places[:RANKED]


def top_systems(session: Session, geoip: GeoIp, actor: Actor, allocation_id: int, period: Period,
                now: datetime) -> Ranking[SystemRead]:
    """The autonomous systems the period's sources belong to, busiest first (NotConfigured without the ASN
    database)."""
    since, total, places = _by_place(session, actor, allocation_id, period, now, geoip.systems().of)
    items = [SystemRead(asn=found.key, **found._asdict()) for found in places]
    return Ranking[SystemRead](period=period.value, since=since, total=total, items=items)


def countries(session: Session, geoip: GeoIp, actor: Actor, allocation_id: int, period: Period,
              now: datetime) -> Ranking[CountryRead]:
    """The countries of the period's sources and their share of the traffic (NotConfigured without the country
    database)."""
    since, total, places = _by_place(session, actor, allocation_id, period, now, geoip.countries().of)
    items = [CountryRead(country=found.key, **found._asdict()) for found in places]
    return Ranking[CountryRead](period=period.value, since=since, total=total, items=items)


def ports(session: Session, actor: Actor, allocation_id: int, period: Period, now: datetime, *,
          by_packets: bool = False) -> Ranking[PortRead]:
    """The most-hit TCP and UDP destination ports of the address in the period."""
    allocation_id, since, total = _window(session, actor, allocation_id, period, now)
    ranked = repository.ranked(session, allocation_id, PORT, since, by_packets=by_packets)
    whole = sum(size for _key, _packets, size in ranked)
    items = []
    for key, packets, size in ranked[:RANKED]:
        protocol, port = key.split("/")
        items.append(PortRead(protocol=protocol, port=int(port), packets=packets, bytes=size,
                              share=_share(size, whole)))
    return Ranking[PortRead](period=period.value, since=since, total=total, items=items)


def dropped(session: Session, actor: Actor, allocation_id: int, period: Period,
            now: datetime) -> Ranking[DroppedRead]:
    """A sample of what the address's firewall dropped in the period, by source and destination port."""
    allocation_id, since, total = _window(session, actor, allocation_id, period, now)
    items = []
    for key, packets, size in repository.ranked(session, allocation_id, DROPPED, since, limit=RANKED):
        source, destination = key.split(" ")
        protocol, port = destination.split("/")
        items.append(DroppedRead(ip=str(ipaddress.ip_address(source)), protocol=protocol, port=int(port),
                                 packets=packets, bytes=size))
    return Ranking[DroppedRead](period=period.value, since=since, total=total, items=items)


def pps(session: Session, actor: Actor, allocation_id: int, period: Period, now: datetime) -> PpsSeries:
    """Inbound packets (and bits) per second over the period, a point per reading whose interval is known."""
    allocation_id, since, _total = _window(session, actor, allocation_id, period, now)
    points = [RatePoint(at=row.sampled_at, seconds=row.seconds, pps=round(row.packets / row.seconds, 2),
                        bps=round(row.bytes * 8 / row.seconds, 1))
              for row in repository.samples(session, allocation_id, ALL, since) if row.seconds > 0]
    return PpsSeries(period=period.value, since=since, points=points)
