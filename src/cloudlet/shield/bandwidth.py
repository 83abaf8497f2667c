"""Bandwidth: each server's NIC capped at its plan's Mbit/s, its traffic as a series of bits per second, and the
monthly transfer its plan includes, counted, warned about and enforced.

The cap is the node's (drivers' set_bandwidth: tc on the guest's tap, programmed by libvirt); a guest gets it when
it is built, rebuilt or resized (instances.service.guest_spec), and the quota round below gives every guest the cap
it should have whenever it differs (an operator changed the plan's cap, a throttle began or ended).

Transfer is what the metrics sampler counted for the server this calendar month (UTC): bytes to the guest and from
it together, against the plan's `bandwidth_gb` (10^9 bytes a GB; 0 counts nothing). At
CLOUDLET_TRANSFER_WARN_PERCENT of it the project is warned once a month (an event and a mail to its owners); once
it is used up, the server is held at CLOUDLET_TRANSFER_THROTTLE_MBIT (never above its plan's cap) until the month
ends, and the round after gives it its plan's cap back. Driver calls are made outside any transaction, each with
a deadline; a node that does not answer is tried again at the next round.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from itertools import groupby
from typing import cast

import structlog
from pydantic import BaseModel
from sqlalchemy.orm import Session

from cloudlet.config import Settings
from cloudlet.drivers.base import DriverError, GuestNotFound, HypervisorDriver
from cloudlet.events import service as events
from cloudlet.events.schemas import EventKind
from cloudlet.instances import queries as instance_queries
from cloudlet.instances import service as instances
from cloudlet.instances.schemas import BandwidthTarget
from cloudlet.instances.work import BoundedDriver
from cloudlet.kit import clock
from cloudlet.kit.db import Database
from cloudlet.mail import service as mail
from cloudlet.metrics import service as metrics
from cloudlet.metrics.schemas import NetRate, Period, Transfer
from cloudlet.nodes import service as nodes
from cloudlet.projects import service as projects
from cloudlet.projects.schemas import Actor
from cloudlet.shield.schemas import (
    BandwidthNow,
    BandwidthPoint,
    IpBandwidthRead,
    QuotaReport,
    QuotaState,
    TransferRead,
)
from cloudlet.shield.service import ip_record

log = structlog.get_logger(__name__)

GB = 10**9
CALL_SECONDS = 30.0  # one node call of the round (libvirt answers in milliseconds; a hung node must not hold it)


def _bits(rate: NetRate) -> BandwidthNow:
    return BandwidthNow(in_bps=round(rate.rx_bps * 8, 1), out_bps=round(rate.tx_bps * 8, 1))


def current(session: Session, instance_ids: list[int]) -> dict[int, BandwidthNow]:
    """The traffic of these servers now (the sampler's newest reading, if recent), in one statement."""
    return {instance_id: _bits(rate) for instance_id, rate in metrics.latest_rates(session, instance_ids,
                                                                                   clock.now()).items()}


def next_month(month: date) -> datetime:
    """The moment (UTC) the month after `month` begins."""
    year, number = (month.year + 1, 1) if month.month == 12 else (month.year, month.month + 1)
    return datetime(year, number, 1, tzinfo=UTC)


def _state(settings: Settings, used: int, quota: int | None, throttled_until: datetime | None,
           now: datetime) -> QuotaState:
    if throttled_until is not None and now < throttled_until:
        return QuotaState.THROTTLED
    if not quota:
        return QuotaState.UNLIMITED
    if used * 100 >= quota * settings.transfer_warn_percent:
        return QuotaState.WARNED
    return QuotaState.OK


def transfer_read(settings: Settings, transfer: Transfer, quota_gb: int, throttled_until: datetime | None,
                  now: datetime) -> TransferRead:
    """A server's transfer this month against its plan's."""
    used = transfer.rx_bytes + transfer.tx_bytes
    quota = quota_gb * GB if quota_gb else None
    return TransferRead(month=f"{transfer.month:%Y-%m}", in_bytes=transfer.rx_bytes, out_bytes=transfer.tx_bytes,
                        total_bytes=used, quota_bytes=quota,
                        used_percent=round(100 * used / quota, 2) if quota else None,
                        warn_percent=settings.transfer_warn_percent,
                        state=_state(settings, used, quota, throttled_until, now),
                        throttled_until=throttled_until if throttled_until and now < throttled_until else None)


def ip_bandwidth(session: Session, settings: Settings, actor: Actor, allocation_id: int,
                 period: Period) -> IpBandwidthRead:
    """An address's bits per second in and out over the period (its server's metrics history), its server's caps,
    and its transfer this month. Another project's address is a NotFound."""
    allocation, server = ip_record(session, actor, allocation_id)
    now = clock.now()
    points = [BandwidthPoint(at=point.at, in_bps=round(point.net_rx_bps * 8, 1), out_bps=round(point.net_tx_bps * 8, 1))
              for point in metrics.history(session, server.id, period, now)]
    plan_mbit, throttled_until = instances.bandwidth_of(session, server.id)
    month = metrics.month_of(now)
    transfer = metrics.transfer(session, [server.id], month)[server.id]
    return IpBandwidthRead(
        id=allocation.id, ip=allocation.address, instance_id=server.uuid, period=period.value,
        resolution=period.resolution.value, cap_mbit=plan_mbit,
        effective_cap_mbit=instances.network_cap(settings, plan_mbit, throttled_until),
        current=current(session, [server.id]).get(server.id), points=points,
        transfer=transfer_read(settings, transfer, server.bandwidth_gb, throttled_until, now))


# --- the quota round ---------------------------------------------------------------------------------------


class TransferNotice(BaseModel):
    """The payload of a transfer event."""

    instance_id: str
    name: str
    month: str
    total_bytes: int
    quota_bytes: int
    used_percent: float
    throttle_mbit: int | None = None
    until: datetime | None = None


def _subject(target: BandwidthTarget) -> str:
    return f"instance:{target.uuid}"


def _tell(session: Session, kind: EventKind, target: BandwidthTarget, notice: TransferNotice, text: str) -> None:
    """Record the event and mail the project's owners."""
    events.record(session, kind, project_id=target.project_id, subject=_subject(target), payload=notice)
    for address in projects.owner_emails(session, target.project_id):
        mail.queue(session, to=address, subject=f"Server {target.name}: {text}", kind=str(kind),
                   body=(f"Your server {target.name} ({target.uuid}) {text}.\n\n"
                         f"Transfer in {notice.month}: {notice.total_bytes / GB:.2f} GB of "
                         f"{notice.quota_bytes / GB:.0f} GB ({notice.used_percent:.0f} %).\n"))


def _decide(settings: Settings, target: BandwidthTarget, used: int,
            now: datetime) -> tuple[datetime | None, bool]:
    """(the throttle the server should be under, whether that is a change)."""
    throttled = target.throttled_until
    if throttled is not None and now >= throttled:
        return None, True  # its month ended: restored
    quota = target.plan_transfer_gb * GB
    if throttled is None and quota and used >= quota:
        return next_month(metrics.month_of(now)), True
    return throttled, False


def _apply(driver: HypervisorDriver, target: BandwidthTarget, wanted: int | None) -> bool:
    """Give the guest the cap it should have; whether it had another."""
    try:
        if driver.bandwidth(target.guest_name) == wanted:
            return False
        driver.set_bandwidth(target.guest_name, wanted)
    except GuestNotFound:
        return False  # not on its node (yet): its build or the reconciler will see to it
    return True


def quota_round(db: Database, drivers: nodes.Drivers, settings: Settings) -> QuotaReport:
    """Count each server's month against its plan, warn, throttle or restore it, and give each guest its cap."""
    now = clock.now()
    month = metrics.month_of(now)
    with db.session(write=False) as session:
        targets = instance_queries.bandwidth_targets(session)
        used = {instance_id: t.rx_bytes + t.tx_bytes
                for instance_id, t in metrics.transfer(session, [t.instance_id for t in targets], month).items()}
    report = QuotaReport(checked=len(targets))
    for (_node_id, uri), group in groupby(targets, key=lambda t: (t.node_id, t.node_uri)):
        try:
            driver = cast(HypervisorDriver, BoundedDriver(drivers.connect(uri), CALL_SECONDS))
        except DriverError as error:
            log.warning("transfer quota: node did not answer", uri=uri, error=str(error))
            report.unreachable.append(uri)
            continue
        for target in group:
            _one(db, settings, driver, target, used[target.instance_id], now, report)
    return report


def _one(db: Database, settings: Settings, driver: HypervisorDriver, target: BandwidthTarget, used: int,
         now: datetime, report: QuotaReport) -> None:
    throttled_until, changed = _decide(settings, target, used, now)
    try:  # the node first: a throttle is recorded once the node holds it (a failed call is tried next round)
        report.capped += _apply(driver, target, instances.network_cap(settings, target.plan_mbit, throttled_until))
    except DriverError as error:
        log.warning("transfer quota: cap not set", instance=target.uuid, error=str(error))
        return
    quota = target.plan_transfer_gb * GB
    warn = quota and used * 100 >= quota * settings.transfer_warn_percent and throttled_until is None
    if not changed and not warn:
        return  # nothing to record: no transaction
    notice = TransferNotice(instance_id=target.uuid, name=target.name, month=f"{metrics.month_of(now):%Y-%m}",
                            total_bytes=used, quota_bytes=quota,
                            used_percent=round(100 * used / quota, 2) if quota else 0.0)
    month_start = datetime.combine(metrics.month_of(now), datetime.min.time(), tzinfo=UTC)
    with db.session() as session:
        if changed:
            instances.set_throttle(session, target.instance_id, throttled_until)
        if changed and throttled_until is None:
            report.restored += 1
            _tell(session, EventKind.TRANSFER_RESTORED, target, notice.model_copy(update={"used_percent": 0.0}),
                  "has its full bandwidth back for the new month")
        elif changed:
            report.throttled += 1
            mbit = instances.network_cap(settings, target.plan_mbit, throttled_until)
            _tell(session, EventKind.TRANSFER_THROTTLED, target,
                  notice.model_copy(update={"throttle_mbit": mbit, "until": throttled_until}),
                  f"used its monthly transfer and is limited to {mbit} Mbit/s until the month ends")
        if warn and not events.recorded_since(session, EventKind.TRANSFER_WARNING, _subject(target), month_start):
            report.warned += 1
            _tell(session, EventKind.TRANSFER_WARNING, target, notice,
                  f"used {notice.used_percent:.0f} % of its monthly transfer")
