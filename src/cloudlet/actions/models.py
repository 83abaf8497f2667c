"""Actions and their ordered tasks: every change to infrastructure, recorded step by step.

An action works on an instance, on a node, or on neither (what its params name: a certificate's hostname). It
has a command, a status (running, then success or error), progress 0-100, ordered tasks, start and finish times
and an error. The tables keep their names from when they lived in instances/.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cloudlet.kit import clock
from cloudlet.kit.db import Base, UTCDateTime, enum_column


class ActionStatus(StrEnum):
    """An action runs, then succeeds or fails."""

    RUNNING = "running"
    SUCCESS = "success"
    ERROR = "error"


class TaskStatus(StrEnum):
    """One task of an action (CyberPanel's words)."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"


class Action(Base):
    """One change to an instance, a node (a firewall push) or neither (the edge), carried out by the durable
    workflow named workflow_id. An instance's action holds its instance (locked_action_id); the others nothing."""

    __tablename__ = "actions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"), index=True)
    node_id: Mapped[int | None] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"), index=True)
    command: Mapped[str] = mapped_column(String(40))
    status: Mapped[ActionStatus] = mapped_column(enum_column(ActionStatus), index=True)
    progress: Mapped[int] = mapped_column(Integer, default=0)
    current_task: Mapped[str | None] = mapped_column(String(60))
    error: Mapped[str | None] = mapped_column(Text)
    workflow_id: Mapped[str] = mapped_column(String(80), unique=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ActionTask(Base):
    """One ordered task of an action."""

    __tablename__ = "action_tasks"
    __table_args__ = (UniqueConstraint("action_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    action_id: Mapped[int] = mapped_column(ForeignKey("actions.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(60))
    position: Mapped[int] = mapped_column(Integer)
    status: Mapped[TaskStatus] = mapped_column(enum_column(TaskStatus))
    detail: Mapped[str] = mapped_column(String(2000), default="")
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
