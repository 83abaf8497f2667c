"""The metrics history of instances, and the last counters read from each guest.

A guest reports cumulative counters (CPU time, bytes read and written, bytes received and sent);
`InstanceCounters` keeps the last reading of each instance so the next one gives rates, and
`MonthlyTransfer` the bytes each one received and sent per calendar month (UTC), kept past history. A
`MetricPoint` is one point of history: rates over the interval it covers and gauges (memory, disk)
at its time, either a raw sample or a 5-minute average of raw samples (see service.py for the
downsampling and retention policy).
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Boolean, Date, Float, ForeignKey, Index, Integer
from sqlalchemy.orm import Mapped, mapped_column

from cloudlet.kit.db import Base, UTCDateTime, enum_column


class Resolution(StrEnum):
    """How much time one history point stands for."""

    RAW = "raw"  # one sample: the interval since the sample before it
    FIVE_MINUTES = "5m"  # the average of the raw samples of a 5-minute bucket, timed at the bucket's start


class MetricPoint(Base):
    """One point of an instance's history: rates over `seconds` ending (raw) or starting (5m) at `at`."""

    __tablename__ = "metric_points"
    # the clean-up finds old points of one resolution across every instance
    __table_args__ = (Index("ix_metric_points_resolution_at", "resolution", "at"),)

    # the key is also the index every history query and every clean-up walks
    instance_id: Mapped[int] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"), primary_key=True)
    resolution: Mapped[Resolution] = mapped_column(enum_column(Resolution, length=8), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    seconds: Mapped[float] = mapped_column(Float)  # how much guest time the rates cover
    samples: Mapped[int] = mapped_column(Integer)  # raw samples folded into this point (1 for a raw one)
    cpu_percent: Mapped[float] = mapped_column(Float)  # of the vCPUs the guest has, 0-100
    vcpus: Mapped[int] = mapped_column(Integer)
    memory_mib: Mapped[int] = mapped_column(Integer)  # what the guest was given
    memory_used_mib: Mapped[int | None] = mapped_column(Integer)  # None when the guest's balloon does not say
    disk_used_bytes: Mapped[int] = mapped_column(BigInteger)  # what the disk takes on the node
    disk_total_bytes: Mapped[int] = mapped_column(BigInteger)
    disk_read_bps: Mapped[float] = mapped_column(Float)  # bytes per second
    disk_write_bps: Mapped[float] = mapped_column(Float)
    net_rx_bps: Mapped[float] = mapped_column(Float)
    net_tx_bps: Mapped[float] = mapped_column(Float)


class InstanceCounters(Base):
    """The last reading of an instance's guest: its cumulative counters and since when it runs."""

    __tablename__ = "instance_counters"

    instance_id: Mapped[int] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"), primary_key=True)
    read_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)  # Cloudlet's clock, for retention
    sampled_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the node's clock: rates use its differences
    running: Mapped[bool] = mapped_column(Boolean)
    # the first reading that found the guest running after it was not (or when the sampler first met it)
    running_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cpu_time_ns: Mapped[int] = mapped_column(BigInteger)
    disk_read_bytes: Mapped[int] = mapped_column(BigInteger)
    disk_write_bytes: Mapped[int] = mapped_column(BigInteger)
    net_rx_bytes: Mapped[int] = mapped_column(BigInteger)
    net_tx_bytes: Mapped[int] = mapped_column(BigInteger)


class MonthlyTransfer(Base):
    """The bytes an instance's guest received and sent in one calendar month (UTC), summed from the sampler's
    readings (what history's raw points cover), kept after the points themselves are gone."""

    __tablename__ = "monthly_transfer"

    instance_id: Mapped[int] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"), primary_key=True)
    month: Mapped[date] = mapped_column(Date, primary_key=True)  # its first day
    rx_bytes: Mapped[int] = mapped_column(BigInteger, default=0)  # to the guest
    tx_bytes: Mapped[int] = mapped_column(BigInteger, default=0)  # from the guest
