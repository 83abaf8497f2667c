"""SQL of Shield."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloudlet.shield.models import AddressFirewallRow, FirewallRule


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


def rule_count(session: Session, firewall_id: int) -> int:
    """How many rules a firewall has."""
    return session.scalar(select(func.count()).where(FirewallRule.firewall_id == firewall_id)) or 0


def add(session: Session, row: AddressFirewallRow | FirewallRule) -> None:
    """Insert a row and give it its id."""
    session.add(row)
    session.flush()


def delete(session: Session, row: FirewallRule) -> None:
    """Remove a rule."""
    session.delete(row)
    session.flush()


def firewalls_by_id(session: Session, firewall_ids: Sequence[int]) -> Sequence[AddressFirewallRow]:
    """These firewalls, locked for the change."""
    return session.scalars(select(AddressFirewallRow).where(AddressFirewallRow.id.in_(firewall_ids))
                           .with_for_update()).all()
