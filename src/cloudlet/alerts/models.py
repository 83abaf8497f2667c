"""Alert rules and the alerts they open.

A rule watches one metric of one target (an instance, or a node for operators) and says when it is bad: an
operator and a threshold, held for a duration. The evaluation (service.evaluate, on a schedule) opens an alert
when the condition starts holding and resolves it when it stops; a rule has at most one open alert at a time,
which `open_rule_id` (the rule's id while open, NULL after) keeps true under a unique index on both engines.
An alert copies what its rule said when it opened, so it still reads right once the rule changes or goes.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from cloudlet.kit import clock
from cloudlet.kit.db import Base, UTCDateTime, enum_column


class TargetType(StrEnum):
    """What a rule watches: a customer's instance, or a hypervisor node (an operator object)."""

    NODE = "node"
    INSTANCE = "instance"


class Metric(StrEnum):
    """What a rule compares with its threshold (see service.METRICS for the units and targets of each)."""

    CPU_USAGE = "cpu_usage"  # percent: of an instance's vCPUs; of a node's CPUs, summed over its instances
    MEMORY_USAGE = "memory_usage"  # percent of the memory the instance was given
    DISK_READ = "disk_read"  # bytes per second
    DISK_WRITE = "disk_write"
    NETWORK_IN = "network_in"  # bytes per second, received by the guest
    NETWORK_OUT = "network_out"
    NODE_DOWN = "node_down"  # 1 while the node's heartbeat is stale or failing, else 0
    ACTION_FAILURES = "action_failures"  # failed actions of the target over the last duration_seconds


class Operator(StrEnum):
    """How a value compares with the threshold."""

    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"


class Severity(StrEnum):
    """How bad an alert of the rule is."""

    INFO = "info"
    WARN = "warn"
    CRITICAL = "critical"


class AlertStatus(StrEnum):
    """An alert is open while its condition holds, then resolved."""

    OPEN = "open"
    RESOLVED = "resolved"


class AlertRule(Base):
    """A condition on one metric of one target, and how its alerts are told."""

    __tablename__ = "alert_rules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(String(200))
    target_type: Mapped[TargetType] = mapped_column(enum_column(TargetType, length=16))
    target_id: Mapped[str] = mapped_column(String(64))  # an instance's uuid, a node's id
    metric: Mapped[Metric] = mapped_column(enum_column(Metric, length=32))
    operator: Mapped[Operator] = mapped_column(enum_column(Operator, length=8))
    threshold: Mapped[float] = mapped_column(Float)
    duration_seconds: Mapped[int] = mapped_column(Integer)
    severity: Mapped[Severity] = mapped_column(enum_column(Severity, length=16))
    notify_in_app: Mapped[bool] = mapped_column(Boolean, default=True)
    notify_email: Mapped[bool] = mapped_column(Boolean, default=False)
    cooldown_seconds: Mapped[int] = mapped_column(Integer)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, index=True)
    last_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the cooldown counts from here
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, onupdate=clock.now)


class Alert(Base):
    """One time a rule's condition held: open until it stops holding, unread (in the app) until acknowledged."""

    __tablename__ = "alerts"
    # a project's alerts newest first, and its unread ones counted, without reading the others
    __table_args__ = (Index("ix_alerts_project_id_id", "project_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    rule_id: Mapped[int | None] = mapped_column(ForeignKey("alert_rules.id", ondelete="SET NULL"), index=True)
    # the rule's id while the alert is open, NULL once resolved: unique, so a rule has one open alert at most
    open_rule_id: Mapped[int | None] = mapped_column(ForeignKey("alert_rules.id", ondelete="SET NULL"), unique=True)
    status: Mapped[AlertStatus] = mapped_column(enum_column(AlertStatus, length=16))
    # what the rule said when the alert opened
    rule_name: Mapped[str] = mapped_column(String(200))
    target_type: Mapped[TargetType] = mapped_column(enum_column(TargetType, length=16))
    target_id: Mapped[str] = mapped_column(String(64))
    target_name: Mapped[str] = mapped_column(String(200))
    metric: Mapped[Metric] = mapped_column(enum_column(Metric, length=32))
    operator: Mapped[Operator] = mapped_column(enum_column(Operator, length=8))
    threshold: Mapped[float] = mapped_column(Float)
    duration_seconds: Mapped[int] = mapped_column(Integer)
    severity: Mapped[Severity] = mapped_column(enum_column(Severity, length=16))
    in_app: Mapped[bool] = mapped_column(Boolean)  # shown as unread until acknowledged
    value: Mapped[float | None] = mapped_column(Float)  # the newest value seen while open
    message: Mapped[str] = mapped_column(String(500))
    notified: Mapped[bool] = mapped_column(Boolean, default=False)  # False: opened within the rule's cooldown
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
