"""SQL of the metrics domain: history points and the last counters of each instance.

Which instances run where, and how many are in each status, the metrics domain reads through
instances.queries: no statement here touches the instances or nodes tables.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from cloudlet.metrics.models import InstanceCounters, MetricPoint, MonthlyTransfer, Resolution

# --- history points -------------------------------------------------------------------------------


def add_points(session: Session, rows: Sequence[MetricPoint]) -> None:
    """Add history points and flush them (batched into few INSERTs)."""
    session.add_all(rows)
    session.flush()


def points(session: Session, instance_id: int, resolution: Resolution, since: datetime) -> list[MetricPoint]:
    """An instance's points of one resolution from `since` on, oldest first."""
    query = (select(MetricPoint).where(MetricPoint.instance_id == instance_id, MetricPoint.resolution == resolution,
                                       MetricPoint.at >= since).order_by(MetricPoint.at))
    return list(session.scalars(query))


def raw_since(session: Session, instance_ids: Iterable[int], since: datetime) -> list[MetricPoint]:
    """The raw points of these instances from `since` on, by instance and time, in one statement."""
    ids = list(set(instance_ids))
    if not ids:
        return []
    query = (select(MetricPoint).where(MetricPoint.resolution == Resolution.RAW, MetricPoint.instance_id.in_(ids),
                                       MetricPoint.at >= since).order_by(MetricPoint.instance_id, MetricPoint.at))
    return list(session.scalars(query))


def raw_before(session: Session, boundary: datetime) -> list[MetricPoint]:
    """Every raw point older than boundary, by instance and time."""
    query = (select(MetricPoint).where(MetricPoint.resolution == Resolution.RAW, MetricPoint.at < boundary)
             .order_by(MetricPoint.instance_id, MetricPoint.at))
    return list(session.scalars(query))


def five_minute_points(session: Session, instance_ids: Iterable[int], starts: Iterable[datetime]) -> list[MetricPoint]:
    """The 5-minute points of these instances at these bucket starts (those that exist)."""
    ids, times = list(set(instance_ids)), list(set(starts))
    if not ids or not times:
        return []
    query = select(MetricPoint).where(MetricPoint.resolution == Resolution.FIVE_MINUTES,
                                      MetricPoint.instance_id.in_(ids), MetricPoint.at.in_(times))
    return list(session.scalars(query))


def add(session: Session, row: MetricPoint | InstanceCounters) -> None:
    """Add a row (written at the next flush)."""
    session.add(row)


def delete_points(session: Session, resolution: Resolution, before: datetime) -> int:
    """Remove the points of one resolution older than before; how many went."""
    result = session.execute(delete(MetricPoint).where(MetricPoint.resolution == resolution, MetricPoint.at < before)
                             .execution_options(synchronize_session=False))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]  # a DML result has a rowcount


def latest_raw(session: Session, instance_ids: Iterable[int]) -> dict[int, MetricPoint]:
    """The newest raw point of each of these instances that has one."""
    ids = list(instance_ids)
    if not ids:
        return {}
    newest = (select(MetricPoint.instance_id, func.max(MetricPoint.at).label("at"))
              .where(MetricPoint.resolution == Resolution.RAW, MetricPoint.instance_id.in_(ids))
              .group_by(MetricPoint.instance_id).subquery())
    query = select(MetricPoint).join(newest, (MetricPoint.instance_id == newest.c.instance_id)
                                     & (MetricPoint.at == newest.c.at)).where(MetricPoint.resolution == Resolution.RAW)
    return {row.instance_id: row for row in session.scalars(query)}


# --- counters -------------------------------------------------------------------------------------


def counters(session: Session, instance_ids: Iterable[int], *, lock: bool = False) -> dict[int, InstanceCounters]:
    """The kept counters of these instances, locked for update when asked."""
    ids = list(instance_ids)
    if not ids:
        return {}
    query = select(InstanceCounters).where(InstanceCounters.instance_id.in_(ids))
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return {row.instance_id: row for row in session.scalars(query)}


def delete_counters(session: Session, before: datetime) -> int:
    """Forget the counters of instances not read since before (deleted or long stopped); how many went."""
    result = session.execute(delete(InstanceCounters).where(InstanceCounters.read_at < before)
                             .execution_options(synchronize_session=False))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def last_read_at(session: Session) -> datetime | None:
    """When the sampler last read any guest."""
    found: datetime | None = session.scalar(select(func.max(InstanceCounters.read_at)))
    return found


def counters_read_since(session: Session, since: datetime) -> list[InstanceCounters]:
    """The kept counters of the guests read since `since`, by instance."""
    query = select(InstanceCounters).where(InstanceCounters.read_at >= since).order_by(InstanceCounters.instance_id)
    return list(session.scalars(query))


# --- monthly transfer -----------------------------------------------------------------------------


def transfers(session: Session, instance_ids: Iterable[int], month: date, *,
              lock: bool = False) -> dict[int, MonthlyTransfer]:
    """The transfer rows of these instances for one month (those that exist), locked for update when asked."""
    ids = list(instance_ids)
    if not ids:
        return {}
    query = select(MonthlyTransfer).where(MonthlyTransfer.instance_id.in_(ids), MonthlyTransfer.month == month)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return {row.instance_id: row for row in session.scalars(query)}


def add_transfer(session: Session, row: MonthlyTransfer) -> None:
    """Add a transfer row (written at the next flush)."""
    session.add(row)
