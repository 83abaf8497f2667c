"""SQL of the nodes domain: nodes, their reservations and registration tokens."""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloudlet.kit.db import Base
from cloudlet.nodes.models import Node, NodeFirewallRule, NodeRegistrationToken, NodeReservation, NodeStatus

Row = TypeVar("Row", bound=Base)


def insert(session: Session, row: Row) -> Row:
    """Add a row and flush it so it has its id."""
    session.add(row)
    session.flush()
    return row


def delete(session: Session, row: Base) -> None:
    """Delete a row now."""
    session.delete(row)
    session.flush()


def flush(session: Session) -> None:
    """Send pending changes (constraint errors surface here, inside the caller's transaction)."""
    session.flush()


def nodes(session: Session) -> list[Node]:
    """Every node, oldest first."""
    return list(session.scalars(select(Node).order_by(Node.id)))


def node(session: Session, node_id: int, *, lock: bool = False) -> Node | None:
    """One node by id; lock=True holds its row (FOR UPDATE on PostgreSQL) until the transaction ends."""
    query = select(Node).where(Node.id == node_id)
    if lock:
        query = query.with_for_update()
    return session.scalars(query.execution_options(populate_existing=True)).first()


def node_by_name(session: Session, name: str) -> Node | None:
    """One node by name."""
    return session.scalars(select(Node).where(Node.name == name)).first()


def count_nodes(session: Session) -> int:
    """How many nodes exist."""
    return session.scalar(select(func.count()).select_from(Node)) or 0


def schedulable(session: Session, region_id: int) -> list[Node]:
    """Ready, uncordoned nodes of a region, locked in id order (so two placements never deadlock)."""
    query = (select(Node).where(Node.region_id == region_id, Node.status == NodeStatus.READY.value,
                                Node.cordoned.is_(False))
             .order_by(Node.id).with_for_update().execution_options(populate_existing=True))
    return list(session.scalars(query))


def open_reservations(session: Session, node_id: int) -> int:
    """How many reservations on a node are not released."""
    return session.scalar(select(func.count()).select_from(NodeReservation).where(
        NodeReservation.node_id == node_id, NodeReservation.released_at.is_(None))) or 0


def open_reservations_by_node(session: Session) -> dict[int, int]:
    """Open reservations per node id."""
    rows = session.execute(select(NodeReservation.node_id, func.count()).where(
        NodeReservation.released_at.is_(None)).group_by(NodeReservation.node_id))
    return {row[0]: row[1] for row in rows}


def reservation(session: Session, reservation_id: int, *, lock: bool = False) -> NodeReservation | None:
    """One reservation by id."""
    query = select(NodeReservation).where(NodeReservation.id == reservation_id)
    if lock:
        query = query.with_for_update()
    return session.scalars(query.execution_options(populate_existing=True)).first()


def has_reservations(session: Session, node_id: int) -> bool:
    """Whether any reservation (open or released) names this node."""
    return session.scalar(select(NodeReservation.id).where(NodeReservation.node_id == node_id).limit(1)) is not None


def delete_released(session: Session, node_id: int) -> None:
    """Forget a node's released reservations (history that would block deleting it)."""
    for row in session.scalars(select(NodeReservation).where(NodeReservation.node_id == node_id,
                                                             NodeReservation.released_at.is_not(None))):
        session.delete(row)
    session.flush()


def token_by_digest(session: Session, token_digest: str, *, lock: bool = False) -> NodeRegistrationToken | None:
    """A registration token by its digest."""
    query = select(NodeRegistrationToken).where(NodeRegistrationToken.token_digest == token_digest)
    if lock:
        query = query.with_for_update()
    return session.scalars(query).first()


def firewall_rules(session: Session, node_id: int) -> list[NodeFirewallRule]:
    """A node's own firewall rules, in the order they decide (the order they were added)."""
    return list(session.scalars(select(NodeFirewallRule).where(NodeFirewallRule.node_id == node_id)
                                .order_by(NodeFirewallRule.id)))


def firewall_rule(session: Session, node_id: int, rule_id: int) -> NodeFirewallRule | None:
    """One rule of a node's own firewall."""
    return session.scalars(select(NodeFirewallRule).where(NodeFirewallRule.node_id == node_id,
                                                          NodeFirewallRule.id == rule_id)).first()
