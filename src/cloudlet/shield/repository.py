"""SQL of Shield."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from cloudlet.shield.models import AddressFirewallRow, FirewallRule, TrafficSample


def firewall(session: Session, allocation_id: int, *, lock: bool = False) -> AddressFirewallRow | None:
    """The firewall of an address, if it has one."""
    query = select(AddressFirewallRow).where(AddressFirewallRow.allocation_id == allocation_id)
    return session.scalars(query.with_for_update() if lock else query).first()


def firewalls(session: Session, allocation_ids: Sequence[int]) -> dict[int, AddressFirewallRow]:
    """The firewalls of these addresses, by allocation id."""
    rows = session.scalars(select(AddressFirewallRow).where(AddressFirewallRow.allocation_id.in_(allocation_ids)))
    return {row.allocation_id: row for row in rows}


def rules(session: Session, firewall_ids: Sequence[int]) -> dict[int, list[FirewallRule]]:
    """The rules of these firewalls, each list in deciding order."""
    found: dict[int, list[FirewallRule]] = {firewall_id: [] for firewall_id in firewall_ids}
    for rule in session.scalars(select(FirewallRule).where(FirewallRule.firewall_id.in_(firewall_ids))
                                .order_by(FirewallRule.priority, FirewallRule.id)):
        found[rule.firewall_id].append(rule)
    return found


def rule(session: Session, firewall_id: int, rule_id: int) -> FirewallRule | None:
    """One rule of a firewall."""
    return session.scalars(select(FirewallRule).where(FirewallRule.firewall_id == firewall_id,
                                                      FirewallRule.id == rule_id)).first()


def add(session: Session, row: AddressFirewallRow | FirewallRule) -> None:
    """Insert a row and give it its id."""
    session.add(row)
    session.flush()


def remove(session: Session, row: FirewallRule) -> None:
    """Remove a rule."""
    session.delete(row)
    session.flush()


def firewalls_by_id(session: Session, firewall_ids: Sequence[int]) -> Sequence[AddressFirewallRow]:
    """These firewalls, locked for the change."""
    return session.scalars(select(AddressFirewallRow).where(AddressFirewallRow.id.in_(firewall_ids))
                           .with_for_update()).all()


def add_samples(session: Session, samples: Sequence[TrafficSample]) -> None:
    """Keep a reading's samples."""
    session.add_all(samples)
    session.flush()


def prune_samples(session: Session, before: datetime) -> None:
    """Forget samples taken before this."""
    session.execute(delete(TrafficSample).where(TrafficSample.sampled_at < before))


def ranked(session: Session, allocation_id: int, kind: str, since: datetime, *, by_packets: bool = False,
           limit: int | None = None) -> list[tuple[str, int, int]]:
    """(key, packets, bytes) of an address's samples of one kind since a time, summed by key, busiest first."""
    packets, size = func.sum(TrafficSample.packets), func.sum(TrafficSample.bytes)
    query = (select(TrafficSample.key, packets, size)
             .where(TrafficSample.allocation_id == allocation_id, TrafficSample.kind == kind,
                    TrafficSample.sampled_at >= since)
             .group_by(TrafficSample.key)
             .order_by(*((packets.desc(), size.desc()) if by_packets else (size.desc(), packets.desc())),
                       TrafficSample.key)
             .limit(limit))
    return [(key, int(p), int(b)) for key, p, b in session.execute(query)]


def samples(session: Session, allocation_id: int, kind: str, since: datetime) -> Sequence[TrafficSample]:
    """An address's samples of one kind since a time, oldest first."""
    return session.scalars(select(TrafficSample).where(
        TrafficSample.allocation_id == allocation_id, TrafficSample.kind == kind, TrafficSample.sampled_at >= since)
        .order_by(TrafficSample.sampled_at, TrafficSample.id)).all()
