"""Reconciliation: what each node's libvirt runs, compared with what the database says.

The database is the truth about what should exist; libvirt is the truth about what runs. For each
node (asked outside any transaction, then compared in one short transaction):
- a guest that stopped by itself (or crashed) while its instance said running shows `stopped`, and
  one that runs while its instance said stopped shows `running` (an instance held by an action is
  left to that action);
- an instance whose guest is gone from the node shows `error`, with the reason;
- a guest no instance owns is reported (an event and a log line), never destroyed: it may be an
  operator's, or the leftover of a crash that someone should look at;
- a node that does not answer marks its instances `unknown` until it answers again, when each gets
  the state libvirt reports.
Each change is recorded as an `instance.drifted` event with what was expected and what was found.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import NamedTuple

import structlog
from pydantic import BaseModel
from sqlalchemy.orm import Session

from cloudlet.drivers.base import DriverError, GuestInfo, GuestState
from cloudlet.events import service as events
from cloudlet.events.schemas import EventKind
from cloudlet.instances import repository
from cloudlet.instances.models import Instance, InstanceStatus
from cloudlet.kit import clock
from cloudlet.nodes import service as nodes

log = structlog.get_logger(__name__)

REPORT_AGAIN_AFTER = timedelta(days=1)
# the stable states libvirt's power state maps to; transitional and paused states are left alone
_SETTLED = {GuestState.RUNNING: InstanceStatus.RUNNING, GuestState.STOPPED: InstanceStatus.STOPPED,
            GuestState.CRASHED: InstanceStatus.STOPPED}
_WATCHED = {InstanceStatus.RUNNING, InstanceStatus.STOPPED, InstanceStatus.UNKNOWN}


class Sighting(NamedTuple):
    """What one node answered (its guests, or why it did not answer) and when it was asked."""

    guests: list[GuestInfo] | None
    at: datetime
    problem: str | None = None


class Drift(BaseModel):
    """One difference found and what was done about it (the payload of an instance.drifted event)."""

    instance_id: str | None
    guest: str
    node: str
    expected: str
    found: str
    action: str


class NodeReport(BaseModel):
    """What reconciling one node found."""

    node: str
    reachable: bool
    drifts: list[Drift] = []
    unknown_guests: list[str] = []


def look(drivers: nodes.Drivers, uri: str) -> Sighting:
    """Ask a node which guests it has (outside any transaction)."""
    asked = clock.now()
    try:
        return Sighting(guests=drivers.connect(uri).list_guests(), at=asked)
    except DriverError as error:
        return Sighting(guests=None, at=asked, problem=str(error) or "the node did not answer")


def _drift(session: Session, row: Instance | None, guest: str, node: str, expected: str, found: str,
           action: str) -> Drift:
    drift = Drift(instance_id=row.uuid if row else None, guest=guest, node=node, expected=expected, found=found,
                  action=action)
    if row is not None:
        events.record(session, EventKind.INSTANCE_DRIFTED, project_id=row.project_id, subject=f"instance:{row.uuid}",
                      payload=drift)
        return drift
    subject = f"guest:{node}:{guest}"  # reported once a day while it stays, not on every round
    if not events.recorded_since(session, EventKind.NODE_UNKNOWN_GUEST, subject, clock.now() - REPORT_AGAIN_AFTER):
        events.record(session, EventKind.NODE_UNKNOWN_GUEST, project_id=None, subject=subject, payload=drift)
        log.warning("unknown guest on node", node=node, guest=guest, state=found)
    return drift


def _settle(session: Session, row: Instance, status: InstanceStatus, node: str, found: str, reason: str) -> Drift:
    drift = _drift(session, row, row.guest_name, node, row.status.value, found, f"status set to {status.value}")
    row.status, row.status_reason = status, reason
    return drift


def record(session: Session, node_id: int, node_name: str, seen: Sighting) -> NodeReport:
    """Compare one node's answer with its instances and repair or report each difference."""
    report = NodeReport(node=node_name, reachable=seen.guests is not None)
    every = repository.on_node(session, node_id)
    # a row changed since the node was asked (an action just ended) is newer than this answer: next round
    rows = [row for row in every if row.updated_at < seen.at]
    if seen.guests is None:
        for row in rows:
            if row.locked_action_id is None and row.status in _WATCHED - {InstanceStatus.UNKNOWN}:
                report.drifts.append(_settle(session, row, InstanceStatus.UNKNOWN, node_name, "no answer",
                                             f"node {node_name} does not answer: {seen.problem}"[:2000]))
        session.flush()
        return report
    guests = {guest.name: guest for guest in seen.guests}
    owned = {row.guest_name for row in every}
    for row in rows:
        if row.locked_action_id is not None or row.status not in _WATCHED:
            continue
        guest = guests.get(row.guest_name)
        if guest is None:
            report.drifts.append(_settle(session, row, InstanceStatus.ERROR, node_name, "missing",
                                         f"the guest is missing from node {node_name}"))
            continue
        settled = _SETTLED.get(guest.state)
        if settled is not None and settled is not row.status:
            reason = ("stopped by itself (seen by the reconciler)" if settled is InstanceStatus.STOPPED
                      and row.status is InstanceStatus.RUNNING else "")
            report.drifts.append(_settle(session, row, settled, node_name, guest.state.value, reason))
    for name in sorted(set(guests) - owned):
        report.unknown_guests.append(name)
        _drift(session, None, name, node_name, "no guest", guests[name].state.value, "reported; left alone")
    session.flush()
    return report
