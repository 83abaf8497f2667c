"""Metrics of instances: live readings from the node, and a history the sampler keeps bounded.

A guest's driver gives cumulative counters (GuestStats: CPU time, disk and network bytes); a rate
(CPU %, bytes per second) is the difference of two readings over the time between them. The sampler
(workflows.py, every minute by default) reads every running instance, keeps its last counters in
`instance_counters`, and writes one raw history point per instance per round from its previous
reading: a guest's first reading, and the first one after it stopped or restarted (its CPU time went
back), give no point, since the interval they would cover is not one the guest ran through.

Retention, so history is bounded per instance whatever the sampling interval:

- raw points are kept until the 5-minute bucket they fall in ended more than an hour ago (60-65 min);
  then the bucket's raw points are folded into one 5-minute point (rates averaged over the time they
  cover, gauges over the samples) and removed, in the same transaction;
- 5-minute points are kept 24 hours, then removed; so an instance has at most 65 min / interval raw
  points (65 at the default minute) and 277 five-minute ones (23 h 5 min of them);
- the counters of an instance not read for 24 hours (stopped, deleted) are removed.

A history of up to an hour shows raw points; a longer one shows 5-minute points, the last hour's made
on the fly from the raw points not yet folded. CPU % is of the vCPUs the guest has (100 = all busy);
memory used is what the guest's balloon driver reports (None without one); disk used is what the
guest's disk takes on the node (allocated blocks of its overlay), not its filesystem's view.

Uptime is the time since the guest last started as Cloudlet knows it: the later of the end of the
newest action that (re)started it (create, boot, restart, reinstall, restore, reactivate) and the first
sample that found it running after it was not (stopped, or a new QEMU process: its CPU time went back),
or, for a guest the sampler met already running, that first sample. It never claims more than the guest
has had, and it is late by at most one sampling interval for starts made behind Cloudlet's back.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.orm import Session

from cloudlet.drivers.base import DriverError, GuestNotFound, GuestState, GuestStats, HypervisorDriver
from cloudlet.instances import actions, queries
from cloudlet.instances import service as instances
from cloudlet.instances.models import ActionStatus, Instance
from cloudlet.instances.schemas import Command
from cloudlet.kit import clock
from cloudlet.kit.errors import NotFound
from cloudlet.metrics import repository
from cloudlet.metrics.models import InstanceCounters, MetricPoint, MonthlyTransfer, Resolution
from cloudlet.metrics.schemas import (
    Counters,
    GuestTarget,
    InstanceHistory,
    InstanceLive,
    InstanceMetrics,
    InstanceSeries,
    LiveMetrics,
    MetricPointRead,
    NetRate,
    NodeCpuPoint,
    OperatorView,
    Period,
    Rates,
    Reading,
    StatusCount,
    Transfer,
)
from cloudlet.nodes import service as nodes
from cloudlet.projects.schemas import Actor

BUCKET = timedelta(minutes=5)
RAW_KEPT = timedelta(hours=1)
HISTORY_KEPT = timedelta(hours=24)
FRESH = timedelta(minutes=10)  # a kept reading older than this gives no "current" rates
ROUND_SPREAD = timedelta(seconds=30)  # the points of one node's guests read in one sampling round are this close
MIN_RATE_SECONDS = 1.0  # a kept reading newer than this is too close for a steady rate: read twice instead
SHORT_SAMPLE_SECONDS = 0.25  # the gap between two live readings when no kept one serves
GIB = 1024**3
STARTING_COMMANDS = frozenset({Command.CREATE, Command.BOOT, Command.RESTART, Command.REINSTALL, Command.RESTORE,
                               Command.REACTIVATE})
# states in which the guest's processor can run, so its rates mean something
ACTIVE_STATES = frozenset({GuestState.RUNNING, GuestState.PAUSED, GuestState.STARTING, GuestState.STOPPING})


# --- arithmetic -----------------------------------------------------------------------------------


def _delta(after: int, before: int) -> int:
    # a counter that went back was reset (a new QEMU process, a re-plugged NIC): count from zero
    return after - before if after >= before else after


def rates(before: Counters, after: Counters, vcpus: int) -> Rates | None:
    """Per-second rates between two readings (None when the second is not later than the first)."""
    seconds = (after.sampled_at - before.sampled_at).total_seconds()
    if seconds <= 0:
        return None
    cpu = 100.0 * _delta(after.cpu_time_ns, before.cpu_time_ns) / (seconds * 1e9 * max(1, vcpus))
    return Rates(seconds=seconds, cpu_percent=round(min(100.0, max(0.0, cpu)), 2),
                 disk_read_bps=_delta(after.disk_read_bytes, before.disk_read_bytes) / seconds,
                 disk_write_bps=_delta(after.disk_write_bytes, before.disk_write_bytes) / seconds,
                 net_rx_bps=_delta(after.net_rx_bytes, before.net_rx_bytes) / seconds,
                 net_tx_bps=_delta(after.net_tx_bytes, before.net_tx_bytes) / seconds)


def bucket_start(at: datetime) -> datetime:
    """The start of the 5-minute bucket a moment falls in."""
    seconds = int(at.timestamp())
    return datetime.fromtimestamp(seconds - seconds % int(BUCKET.total_seconds()), UTC)


def fold(points: Sequence[MetricPointRead], at: datetime) -> MetricPointRead:
    """One 5-minute point of several points: rates weighted by the time they cover, gauges by their samples.

    Folding is associative (a folded point carries its seconds and samples), so a bucket may be folded
    in parts.
    """
    seconds = sum(p.seconds for p in points)
    samples = sum(p.samples for p in points)
    newest = max(points, key=lambda p: p.at)

    def over_time(values: Iterable[tuple[float, float]]) -> float:
        pairs = list(values)
        if seconds > 0:
            return sum(value * weight for value, weight in pairs) / seconds
        return sum(value for value, _ in pairs) / len(pairs)

    def over_samples(values: list[tuple[int, int]]) -> int | None:
        weight = sum(w for _, w in values)
        return round(sum(v * w for v, w in values) / weight) if weight else None

    used = [(p.memory_used_mib, p.samples) for p in points if p.memory_used_mib is not None]
    return MetricPointRead(
        at=at, resolution=Resolution.FIVE_MINUTES, seconds=seconds, samples=samples,
        cpu_percent=round(over_time((p.cpu_percent, p.seconds) for p in points), 2), vcpus=newest.vcpus,
        memory_mib=newest.memory_mib, memory_used_mib=over_samples(used),
        disk_used_bytes=over_samples([(p.disk_used_bytes, p.samples) for p in points]) or 0,
        disk_total_bytes=newest.disk_total_bytes,
        disk_read_bps=over_time((p.disk_read_bps, p.seconds) for p in points),
        disk_write_bps=over_time((p.disk_write_bps, p.seconds) for p in points),
        net_rx_bps=over_time((p.net_rx_bps, p.seconds) for p in points),
        net_tx_bps=over_time((p.net_tx_bps, p.seconds) for p in points),
    )


def _point(instance_id: int, stats: GuestStats, got: Rates, at: datetime) -> MetricPoint:
    return MetricPoint(instance_id=instance_id, resolution=Resolution.RAW, at=at, seconds=got.seconds, samples=1,
                       cpu_percent=got.cpu_percent, vcpus=stats.vcpus, memory_mib=stats.memory_mib,
                       memory_used_mib=stats.memory_used_mib, disk_used_bytes=stats.disk_allocation_bytes,
                       disk_total_bytes=stats.disk_capacity_bytes, disk_read_bps=got.disk_read_bps,
                       disk_write_bps=got.disk_write_bps, net_rx_bps=got.net_rx_bps, net_tx_bps=got.net_tx_bps)


def _read(point: MetricPoint) -> MetricPointRead:
    return MetricPointRead.model_validate(point)


# --- sampling -------------------------------------------------------------------------------------


def sampling_targets(session: Session) -> list[GuestTarget]:
    """Every running instance with a guest on a node, by node: what a sampling round reads."""
    return [GuestTarget(*guest) for guest in queries.running_guests(session)]


def read_guests(driver: HypervisorDriver, targets: Sequence[GuestTarget]) -> tuple[list[Reading], int]:
    """Read the counters of these guests of one node; (readings, how many the node does not have).

    No transaction should be open while this runs. Raises DriverError when the node stops answering.
    """
    readings, missing = [], 0
    for target in targets:
        try:
            readings.append(Reading(target.instance_id, driver.stats(target.guest_name), clock.now()))
        except GuestNotFound:
            missing += 1  # the reconciler's business; nothing to record
    return readings, missing


def record(session: Session, readings: Sequence[Reading]) -> int:
    """Keep the readings' counters and write a raw point for each guest read twice in a row while running.

    A stopped guest reports zero CPU time (the driver contract), which is how a stopped one is told
    apart here. A reading older than the kept one (a slower round committing late) is ignored.
    Each point is stamped with when its counters were read (a busy database may record it a while later).
    Returns how many points were written.
    """
    kept = repository.counters(session, [r.instance_id for r in readings], lock=True)
    made: list[MetricPoint] = []
    moved: dict[tuple[int, date], tuple[int, int]] = defaultdict(lambda: (0, 0))  # bytes by instance and month
    for instance_id, stats, now in readings:
        row = kept.get(instance_id)
        if row is not None and stats.sampled_at <= row.sampled_at:
            continue
        running = stats.cpu_time_ns > 0
        ran_through = row is not None and row.running and running and stats.cpu_time_ns >= row.cpu_time_ns
        if row is not None and ran_through:
            got = rates(Counters.of_row(row), Counters.of_stats(stats), stats.vcpus)
            if got is not None:
                made.append(_point(instance_id, stats, got, now))
                rx, tx = moved[(instance_id, month_of(now))]
                moved[(instance_id, month_of(now))] = (rx + _delta(stats.net_rx_bytes, row.net_rx_bytes),
                                                       tx + _delta(stats.net_tx_bytes, row.net_tx_bytes))
        if row is None:
            row = InstanceCounters(instance_id=instance_id)
            repository.add(session, row)
            kept[instance_id] = row
        if not running:
            row.running_since = None
        elif not ran_through:
            row.running_since = now  # met for the first time, or started again since the last reading
        row.read_at, row.sampled_at, row.running = now, stats.sampled_at, running
        row.cpu_time_ns, row.disk_read_bytes, row.disk_write_bytes = (stats.cpu_time_ns, stats.disk_read_bytes,
                                                                      stats.disk_write_bytes)
        row.net_rx_bytes, row.net_tx_bytes = stats.net_rx_bytes, stats.net_tx_bytes
    repository.add_points(session, made)
    _count_transfer(session, moved)
    return len(made)


def month_of(at: datetime) -> date:
    """The first day of the calendar month (UTC) a moment falls in."""
    return at.astimezone(UTC).date().replace(day=1)


def _count_transfer(session: Session, moved: dict[tuple[int, date], tuple[int, int]]) -> None:
    for month in {month for _, month in moved}:
        ids = [instance_id for instance_id, at in moved if at == month]
        rows = repository.transfers(session, ids, month, lock=True)
        for instance_id in ids:
            rx, tx = moved[(instance_id, month)]
            row = rows.get(instance_id)
            if row is None:
                repository.add_transfer(session, MonthlyTransfer(instance_id=instance_id, month=month, rx_bytes=rx,
                                                                 tx_bytes=tx))
            else:
                row.rx_bytes += rx
                row.tx_bytes += tx
    session.flush()


def transfer(session: Session, instance_ids: Iterable[int], month: date) -> dict[int, Transfer]:
    """What each of these instances received and sent in a month (zero for one the sampler never counted), in one
    statement."""
    ids = list(instance_ids)
    rows = repository.transfers(session, ids, month)
    return {instance_id: Transfer(month, rows[instance_id].rx_bytes, rows[instance_id].tx_bytes)
            if instance_id in rows else Transfer(month, 0, 0) for instance_id in ids}


def latest_rates(session: Session, instance_ids: Iterable[int], now: datetime) -> dict[int, NetRate]:
    """The network rates of the sampler's newest point of each of these instances, in one statement; an
    instance whose newest point is older than FRESH (stopped, or its node silent) is left out."""
    return {instance_id: NetRate(point.at, point.net_rx_bps, point.net_tx_bps)
            for instance_id, point in repository.latest_raw(session, instance_ids).items()
            if point.at >= now - FRESH}


def raw_history(session: Session, instance_ids: Iterable[int], since: datetime) -> dict[int, list[MetricPointRead]]:
    """The raw points of these instances from `since` on, oldest first, in one statement (what alert rules judge;
    raw points are kept about an hour)."""
    found: dict[int, list[MetricPointRead]] = defaultdict(list)
    for point in repository.raw_since(session, instance_ids, since):
        found[point.instance_id].append(_read(point))
    return dict(found)


def node_cpu_history(session: Session, node_vcpus: dict[int, int], since: datetime) -> dict[int, list[NodeCpuPoint]]:
    """How busy each of these nodes' guests kept its CPUs, round by sampling round from `since` on, oldest first;
    `node_vcpus` gives each node's vCPUs. Two statements, whatever the number of nodes and guests.

    A round's points are those of the node's guests read within ROUND_SPREAD of its first one; a guest not read
    in a round (stopped) adds nothing to it.
    """
    placed = queries.instances_on_nodes(session, node_vcpus)
    node_of = {instance_id: node_id for node_id, ids in placed.items() for instance_id in ids}
    by_node: dict[int, list[MetricPointRead]] = defaultdict(list)
    for instance_id, points in raw_history(session, node_of, since).items():
        by_node[node_of[instance_id]].extend(points)
    found: dict[int, list[NodeCpuPoint]] = {}
    for node_id, points in by_node.items():
        rounds: list[list[MetricPointRead]] = []
        for point in sorted(points, key=lambda p: p.at):
            if rounds and point.at - rounds[-1][0].at <= ROUND_SPREAD:
                rounds[-1].append(point)
            else:
                rounds.append([point])
        total = max(1, node_vcpus[node_id])
        found[node_id] = [NodeCpuPoint(start=min(p.at - timedelta(seconds=p.seconds) for p in members),
                                       end=max(p.at for p in members),
                                       cpu_percent=round(sum(p.cpu_percent * p.vcpus for p in members) / total, 2))
                          for members in rounds]
    return found


def compact(session: Session, now: datetime) -> tuple[int, int]:
    """Fold raw points whose bucket ended over an hour ago into 5-minute points; drop what is past 24 hours.

    Returns (raw points folded, rows removed past retention). Idempotent: a bucket folded in two
    parts (a late raw point) is merged into the 5-minute point it already has.
    """
    boundary = bucket_start(now - RAW_KEPT)
    groups: dict[tuple[int, datetime], list[MetricPointRead]] = defaultdict(list)
    for point in repository.raw_before(session, boundary):
        groups[(point.instance_id, bucket_start(point.at))].append(_read(point))
    existing = {(p.instance_id, p.at): p
                for p in repository.five_minute_points(session, (k[0] for k in groups), (k[1] for k in groups))}
    for (instance_id, start), members in groups.items():
        old = existing.get((instance_id, start))
        folded = fold([_read(old), *members] if old is not None else members, start)
        if old is None:
            repository.add(session, MetricPoint(instance_id=instance_id, **folded.model_dump()))
            continue
        for name, value in folded.model_dump(exclude={"at", "resolution"}).items():
            setattr(old, name, value)
    folded_count = repository.delete_points(session, Resolution.RAW, boundary)
    cutoff = now - HISTORY_KEPT
    removed = (repository.delete_points(session, Resolution.FIVE_MINUTES, bucket_start(cutoff))
               + repository.delete_counters(session, cutoff))
    session.flush()
    return folded_count, removed


# --- reading --------------------------------------------------------------------------------------


def _instance(session: Session, actor: Actor, ident: int | str) -> Instance:
    return actions.instance_of(session, actor, ident)


def _last_start(session: Session, actor: Actor, ident: int | str) -> datetime | None:
    try:
        newest = instances.latest_action(session, actor, ident)
    except NotFound:
        return None
    if newest.command in STARTING_COMMANDS and newest.status is ActionStatus.SUCCESS:
        return newest.finished_at
    return None


def _uptime(session: Session, actor: Actor, row: Instance, kept: InstanceCounters | None, now: datetime) -> int:
    seen = kept.running_since if kept is not None and kept.running else None
    started = [moment for moment in (seen, _last_start(session, actor, row.uuid)) if moment is not None]
    return max(0, int((now - max(started)).total_seconds())) if started else 0


def _live_rates(driver: HypervisorDriver, name: str, first: GuestStats,
                kept: InstanceCounters | None) -> tuple[GuestStats, Rates | None]:
    """Rates from the kept reading when it is recent and the guest ran since; else from a second reading."""
    if kept is not None and kept.running and first.cpu_time_ns >= kept.cpu_time_ns:
        age = (first.sampled_at - kept.sampled_at).total_seconds()
        if MIN_RATE_SECONDS <= age <= FRESH.total_seconds():
            return first, rates(Counters.of_row(kept), Counters.of_stats(first), first.vcpus)
    time.sleep(SHORT_SAMPLE_SECONDS)
    second = driver.stats(name)
    return second, rates(Counters.of_stats(first), Counters.of_stats(second), second.vcpus)


def _live(session: Session, drivers: nodes.Drivers, actor: Actor, row: Instance) -> LiveMetrics:
    known = LiveMetrics(state="unknown", vcpus=row.vcpus, memory_mib=row.memory_mib,
                        disk_total_bytes=row.disk_gib * GIB)
    if row.node_id is None:
        return known
    kept = repository.counters(session, [row.id]).get(row.id)
    try:
        driver = drivers.connect(nodes.get_node(session, row.node_id).uri)
        state = driver.state(row.guest_name)
        stats = driver.stats(row.guest_name)
        got: Rates | None = Rates(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        if state in ACTIVE_STATES:
            stats, got = _live_rates(driver, row.guest_name, stats, kept)
    except GuestNotFound:
        return known.model_copy(update={"state": "missing"})
    except DriverError:
        return known
    active = state in ACTIVE_STATES
    return LiveMetrics(
        state=state.value, sampled_at=stats.sampled_at, vcpus=stats.vcpus, memory_mib=stats.memory_mib,
        memory_used_mib=stats.memory_used_mib, disk_total_bytes=stats.disk_capacity_bytes,
        disk_used_bytes=stats.disk_allocation_bytes, disk_read_bytes=stats.disk_read_bytes,
        disk_write_bytes=stats.disk_write_bytes, net_rx_bytes=stats.net_rx_bytes, net_tx_bytes=stats.net_tx_bytes,
        cpu_percent=got.cpu_percent if got else None, disk_read_bps=got.disk_read_bps if got else None,
        disk_write_bps=got.disk_write_bps if got else None, net_rx_bps=got.net_rx_bps if got else None,
        net_tx_bps=got.net_tx_bps if got else None, rates_seconds=got.seconds if got and active else None,
        uptime_seconds=_uptime(session, actor, row, kept, clock.now()) if active else 0,
    )


def history(session: Session, instance_id: int, period: Period, now: datetime) -> list[MetricPointRead]:
    """An instance's history over the period, oldest first: raw points up to an hour, 5-minute ones beyond."""
    since = now - period.span
    raw = [_read(p) for p in repository.points(session, instance_id, Resolution.RAW, since)]
    if period.resolution is Resolution.RAW:
        return raw
    buckets = {p.at: _read(p) for p in repository.points(session, instance_id, Resolution.FIVE_MINUTES,
                                                          bucket_start(since))}
    recent: dict[datetime, list[MetricPointRead]] = defaultdict(list)
    for point in raw:
        recent[bucket_start(point.at)].append(point)
    for start, members in recent.items():
        old = buckets.get(start)
        buckets[start] = fold([old, *members] if old is not None else members, start)
    return [buckets[start] for start in sorted(buckets)]


def instance_live(session: Session, drivers: nodes.Drivers, actor: Actor, ident: int | str) -> InstanceLive:
    """An instance's guest now: power state, counters, rates and uptime, read from its node."""
    row = _instance(session, actor, ident)
    return InstanceLive(id=row.id, uuid=row.uuid, name=row.name, status=row.status,
                        current=_live(session, drivers, actor, row))


def instance_history(session: Session, actor: Actor, ident: int | str, period: Period) -> InstanceHistory:
    """An instance's stored history over the period (its node is not asked)."""
    row = _instance(session, actor, ident)
    return InstanceHistory(id=row.id, uuid=row.uuid, name=row.name, status=row.status, period=period,
                           resolution=period.resolution, history=history(session, row.id, period, clock.now()))


def instance_metrics(session: Session, drivers: nodes.Drivers, actor: Actor, ident: int | str,
                     period: Period) -> InstanceMetrics:
    """An instance's live metrics and its stored history over the period."""
    row = _instance(session, actor, ident)
    current = _live(session, drivers, actor, row)
    return InstanceMetrics(id=row.id, uuid=row.uuid, name=row.name, status=row.status, current=current,
                           period=period, resolution=period.resolution,
                           history=history(session, row.id, period, clock.now()))


# --- the operators' view --------------------------------------------------------------------------


def operator_view(session: Session, now: datetime | None = None) -> OperatorView:
    """The control plane's counts and every instance read in the last ten minutes, for /metrics."""
    now = now or clock.now()
    read = repository.counters_read_since(session, now - FRESH)
    who = queries.series_identities(session, (kept.instance_id for kept in read))
    latest = repository.latest_raw(session, who)
    series = [
        InstanceSeries(**who[kept.instance_id].model_dump(), running=kept.running, read_at=kept.read_at,
                       cpu_time_ns=kept.cpu_time_ns, disk_read_bytes=kept.disk_read_bytes,
                       disk_write_bytes=kept.disk_write_bytes, net_rx_bytes=kept.net_rx_bytes,
                       net_tx_bytes=kept.net_tx_bytes,
                       latest=_read(latest[kept.instance_id]) if kept.instance_id in latest else None)
        for kept in read if kept.instance_id in who  # a deleted instance's counters outlive it a while
    ]
    return OperatorView(instances=[StatusCount(*pair) for pair in queries.status_counts(session)],
                        running_actions=queries.running_action_count(session),
                        last_sample_at=repository.last_read_at(session), nodes=nodes.list_nodes(session),
                        series=series)
