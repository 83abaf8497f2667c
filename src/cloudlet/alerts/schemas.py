"""What the alerts service takes and gives back, in no surface's dialect."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, NamedTuple

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from cloudlet.alerts.models import AlertStatus, Metric, Operator, Severity, TargetType
from cloudlet.kit.text import one_line

MAX_DURATION_SECONDS = 86_400  # a day: node_down and action_failures need no history; sampled metrics an hour
MAX_COOLDOWN_SECONDS = 7 * 86_400
MAX_THRESHOLD = 1e15  # bytes per second past any network; keeps the value a plain double on both engines


def _as_text(value: object) -> object:
    # a node's id may come as a number ("target_id": 3); an instance's uuid is text anyway
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


# an instance's uuid or a node's id: letters, digits and dashes only
TargetId = Annotated[str, BeforeValidator(_as_text), Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+$")]
Threshold = Annotated[float, Field(allow_inf_nan=False, ge=-MAX_THRESHOLD, le=MAX_THRESHOLD)]
Duration = Annotated[int, Field(ge=0, le=MAX_DURATION_SECONDS,
                                description="How long the condition must hold (action_failures: the window counted).")]
Cooldown = Annotated[int, Field(ge=0, le=MAX_COOLDOWN_SECONDS,
                                description="At least this long between two notifications of the rule.")]


def _name(value: str) -> str:
    # the name goes into emails' subjects: one printable line only
    value = one_line(value)
    if not value:
        raise ValueError("the name must not be blank")
    return value


Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_name)]


class AlertRuleCreate(BaseModel):
    """A new rule: Shardlyn's body."""

    name: Name
    target_type: TargetType
    target_id: TargetId
    metric: Metric
    operator: Operator
    threshold: Threshold
    duration_seconds: Duration = 300
    severity: Severity = Severity.WARN
    notify_in_app: bool = True
    notify_email: bool = False
    cooldown_seconds: Cooldown = 600
    enabled: bool = True


class AlertRuleUpdate(BaseModel):
    """A change to a rule: the fields sent change, the others stay."""

    name: Name | None = None
    target_type: TargetType | None = None
    target_id: TargetId | None = None
    metric: Metric | None = None
    operator: Operator | None = None
    threshold: Threshold | None = None
    duration_seconds: Duration | None = None
    severity: Severity | None = None
    notify_in_app: bool | None = None
    notify_email: bool | None = None
    cooldown_seconds: Cooldown | None = None
    enabled: bool | None = None


class AlertRuleRead(BaseModel):
    """A rule as stored."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    uuid: str
    project_id: int
    name: str
    target_type: TargetType
    target_id: str
    metric: Metric
    operator: Operator
    threshold: float
    duration_seconds: int
    severity: Severity
    notify_in_app: bool
    notify_email: bool
    cooldown_seconds: int
    enabled: bool
    last_notified_at: datetime | None
    created_at: datetime
    updated_at: datetime


class AlertRead(BaseModel):
    """An alert, with the rule it came from (None once the rule is deleted) and what that rule said then."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    uuid: str
    project_id: int
    rule_uuid: str | None
    status: AlertStatus
    rule_name: str
    target_type: TargetType
    target_id: str
    target_name: str
    metric: Metric
    operator: Operator
    threshold: float
    duration_seconds: int
    severity: Severity
    in_app: bool
    value: float | None
    message: str
    notified: bool
    opened_at: datetime
    resolved_at: datetime | None
    acknowledged_at: datetime | None


class AlertPage(BaseModel):
    """A page of alerts, newest first, and how many there are in all."""

    items: list[AlertRead]
    total: int


class Sample(NamedTuple):
    """A metric's value over an interval of time (a sample covers what happened from start to end)."""

    start: datetime
    end: datetime
    value: float


class Verdict(NamedTuple):
    """Whether a rule's condition holds now, and the newest value seen (None when there is none)."""

    holds: bool
    value: float | None


class EvaluationReport(BaseModel):
    """What one evaluation round did."""

    rules: int = 0
    opened: int = 0
    resolved: int = 0
    notified: int = 0
    emails: int = 0
