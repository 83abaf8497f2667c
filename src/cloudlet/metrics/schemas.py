"""What the metrics service takes and gives back, in no surface's dialect."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict

from cloudlet.drivers.base import GuestStats
from cloudlet.instances.models import InstanceStatus
from cloudlet.metrics.models import InstanceCounters, Resolution
from cloudlet.nodes.schemas import NodeRead

RAW_LONGEST = timedelta(hours=1)  # periods up to this long are shown sample by sample


class Period(StrEnum):
    """How far back a history goes."""

    MINUTES_5 = "5m"
    MINUTES_30 = "30m"
    HOUR_1 = "1h"
    HOURS_6 = "6h"
    HOURS_12 = "12h"
    HOURS_24 = "24h"

    @property
    def span(self) -> timedelta:
        """The period's length."""
        amount, unit = int(self.value[:-1]), self.value[-1]
        return timedelta(minutes=amount) if unit == "m" else timedelta(hours=amount)

    @property
    def resolution(self) -> Resolution:
        """Raw samples up to an hour, 5-minute averages beyond (raw samples are kept about an hour)."""
        return Resolution.RAW if self.span <= RAW_LONGEST else Resolution.FIVE_MINUTES


class Counters(NamedTuple):
    """The cumulative counters of one reading and when the node took it."""

    sampled_at: datetime
    cpu_time_ns: int
    disk_read_bytes: int
    disk_write_bytes: int
    net_rx_bytes: int
    net_tx_bytes: int

    @classmethod
    def of_stats(cls, stats: GuestStats) -> Counters:
        """The counters of a driver's reading."""
        return cls(stats.sampled_at, stats.cpu_time_ns, stats.disk_read_bytes, stats.disk_write_bytes,
                   stats.net_rx_bytes, stats.net_tx_bytes)

    @classmethod
    def of_row(cls, row: InstanceCounters) -> Counters:
        """The counters kept from the last sample."""
        return cls(row.sampled_at, row.cpu_time_ns, row.disk_read_bytes, row.disk_write_bytes, row.net_rx_bytes,
                   row.net_tx_bytes)


class Rates(NamedTuple):
    """What happened between two readings, per second; CPU as a percentage of the guest's vCPUs."""

    seconds: float
    cpu_percent: float
    disk_read_bps: float
    disk_write_bps: float
    net_rx_bps: float
    net_tx_bps: float


class Reading(NamedTuple):
    """What the sampler read of one instance's guest."""

    instance_id: int
    stats: GuestStats
    read_at: datetime  # when the counters were read: a point is stamped with it, not with when it was recorded


class NodeCpuPoint(NamedTuple):
    """How busy a node's guests kept its CPUs over one sampling round: their busy vCPUs summed, as a percentage
    of the node's vCPUs (its host's own processes are not counted)."""

    start: datetime
    end: datetime
    cpu_percent: float


class GuestTarget(NamedTuple):
    """A running instance the sampler reads, and the node it runs on."""

    node_id: int
    node_name: str
    node_uri: str
    instance_id: int
    guest_name: str


class MetricPointRead(BaseModel):
    """One point of history: rates over `seconds` and gauges, raw or a 5-minute average."""

    model_config = ConfigDict(from_attributes=True)

    at: datetime  # a raw sample's time, or the start of a 5-minute bucket
    resolution: Resolution
    seconds: float
    samples: int
    cpu_percent: float
    vcpus: int
    memory_mib: int
    memory_used_mib: int | None
    disk_used_bytes: int
    disk_total_bytes: int
    disk_read_bps: float
    disk_write_bps: float
    net_rx_bps: float
    net_tx_bps: float


class LiveMetrics(BaseModel):
    """The guest now, as its node reports it: counters since it started and rates over a recent interval.

    state is the hypervisor's power state, "missing" when the node has no such guest, "unknown" when the
    instance has no node or its node does not answer (then only the sizes the instance was given are known).
    """

    state: str
    sampled_at: datetime | None = None
    vcpus: int
    memory_mib: int
    memory_used_mib: int | None = None
    disk_total_bytes: int
    disk_used_bytes: int | None = None
    cpu_percent: float | None = None
    disk_read_bytes: int | None = None
    disk_write_bytes: int | None = None
    net_rx_bytes: int | None = None
    net_tx_bytes: int | None = None
    disk_read_bps: float | None = None
    disk_write_bps: float | None = None
    net_rx_bps: float | None = None
    net_tx_bps: float | None = None
    uptime_seconds: int = 0
    rates_seconds: float | None = None  # the interval the rates (and cpu_percent) cover

    @property
    def memory_percent(self) -> float | None:
        """Memory in use as a percentage of what the guest was given."""
        if self.memory_used_mib is None or self.memory_mib <= 0:
            return None
        return round(100.0 * self.memory_used_mib / self.memory_mib, 1)

    @property
    def disk_percent(self) -> float | None:
        """Disk taken on the node as a percentage of the disk's size."""
        if self.disk_used_bytes is None or self.disk_total_bytes <= 0:
            return None
        return round(100.0 * self.disk_used_bytes / self.disk_total_bytes, 1)


class InstanceLive(BaseModel):
    """An instance and its guest's live metrics."""

    id: int
    uuid: str
    name: str
    status: InstanceStatus
    current: LiveMetrics


class InstanceHistory(BaseModel):
    """An instance's stored history over a period, oldest first."""

    id: int
    uuid: str
    name: str
    status: InstanceStatus
    period: Period
    resolution: Resolution
    history: list[MetricPointRead]


class InstanceMetrics(InstanceHistory):
    """An instance's live metrics and its history over a period."""

    current: LiveMetrics


class SampleReport(BaseModel):
    """What one sampling round did."""

    sampled: int = 0  # guests read
    points: int = 0  # history points written (a guest's first reading gives none: rates need two)
    unreachable: list[str] = []  # nodes that did not answer
    missing: int = 0  # running instances whose guest the node does not have
    folded: int = 0  # raw points folded into 5-minute averages
    removed: int = 0  # points and counters past their retention


class InstanceSeries(BaseModel):
    """What the operators' /metrics shows of one instance: its identity, counters and latest point."""

    uuid: str
    name: str
    project_id: int
    node: str
    running: bool
    read_at: datetime
    cpu_time_ns: int
    disk_read_bytes: int
    disk_write_bytes: int
    net_rx_bytes: int
    net_tx_bytes: int
    latest: MetricPointRead | None


class StatusCount(NamedTuple):
    """How many instances are in one status."""

    status: str
    total: int


class OperatorView(BaseModel):
    """The control plane and every instance the sampler read lately, for the operators' /metrics."""

    instances: list[StatusCount]
    nodes: list[NodeRead]
    running_actions: int
    last_sample_at: datetime | None
    series: list[InstanceSeries]


class Transfer(NamedTuple):
    """What an instance's guest received and sent in one calendar month (UTC)."""

    month: date  # its first day
    rx_bytes: int
    tx_bytes: int


class NetRate(NamedTuple):
    """An instance's network rates (bytes per second) over the sampler's newest interval, ending at `at`."""

    at: datetime
    rx_bps: float
    tx_bps: float
