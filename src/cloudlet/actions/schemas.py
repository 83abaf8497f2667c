"""What operators see of actions: one line per action, and what they send to end a stale one."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from pydantic import BaseModel, Field


class ActionFail(BaseModel):
    """Why an operator ends an action (shown in its error)."""

    reason: str = Field("", max_length=500, description="Why the action is ended; recorded in its error.")


class ActionSummary(BaseModel):
    """An action as operators list it: which instance it holds (or which node it works on), where it stands,
    since when."""

    id: int
    instance_id: int | None
    instance_uuid: str | None
    node_id: int | None = None
    command: str
    status: str
    progress: int
    current_task: str | None
    error: str | None
    workflow_id: str
    started_at: datetime
    finished_at: datetime | None


class ActionFailure(NamedTuple):
    """An action that failed: on which instance or node, and when it ended."""

    instance_id: int | None
    node_id: int | None
    finished_at: datetime
