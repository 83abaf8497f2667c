"""Shardlyn surface: alert rules and alerts at /v1/alerts.

    GET    /v1/alerts/rules              {"rules": [Rule], "total"}, oldest first; ?organization_id=
    POST   /v1/alerts/rules              201 Rule
    GET    /v1/alerts/rules/{id}         Rule
    PUT    /v1/alerts/rules/{id}         Rule: the fields sent change (a changed condition resolves its open alert)
    DELETE /v1/alerts/rules/{id}         204; its open alert resolves, its alerts stay
    GET    /v1/alerts                    {"alerts": [Alert], "total"}, newest first; ?organization_id= ?status=
                                         (open, resolved) ?acknowledged= ?limit= (1-500; default all) ?offset=
    GET    /v1/alerts/unread-count       {"count"}: in-app alerts nobody acknowledged; ?organization_id=
    GET    /v1/alerts/{id}               Alert
    POST   /v1/alerts/{id}/ack           Alert, acknowledged (again: unchanged)

A rule body is the reference's: {"name", "target_type": "instance" | "node", "target_id" (the instance's uuid, a
node's id), "metric", "operator": "gt" | "gte" | "lt" | "lte", "threshold", "duration_seconds", "severity":
"info" | "warn" | "critical", "notify_in_app", "notify_email", "cooldown_seconds"}, and two extensions:
"enabled" (default true) and "organization_id" (default: the caller's organization). Metrics: cpu_usage and
memory_usage (percent), disk_read, disk_write, network_in, network_out (bytes per second) and action_failures for
instances; node_down, cpu_usage and action_failures for nodes (see cloudlet.alerts.service). Node rules and their
alerts are for administrators only (403). Rule = the body's fields with "id" (uuid), "organization_id",
"enabled", "last_notified_at", "created_at", "updated_at". Alert = {"id" (uuid), "rule_id" (null once the rule
is deleted), "organization_id", "name" (the rule's), "status" (open, resolved), "severity", "target_type",
"target_id", "target_name", "metric", "operator", "threshold", "duration_seconds", "value" (the newest seen),
"message", "notified" (false: opened within the rule's cooldown), "in_app", "acknowledged", "acknowledged_at",
"opened_at", "resolved_at"}. Another organization's rule or alert answers 404; invalid input 400 (Shardlyn's
{"error"}).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from cloudlet.alerts import service as alerts
from cloudlet.alerts.models import AlertStatus, Metric, Operator, Severity, TargetType
from cloudlet.alerts.schemas import AlertRead, AlertRuleCreate, AlertRuleRead, AlertRuleUpdate
from cloudlet.auth.caller import Caller
from cloudlet.kit.serial import IsoSeconds
from cloudlet.surfaces.deps import DbSession, requires
from cloudlet.surfaces.params import Offset
from cloudlet.surfaces.shardlyn.organization_schemas import chosen_organization, organization_filter
from cloudlet.tokens.abilities import Ability

router = APIRouter(prefix="/v1/alerts", tags=["shardlyn"])

Reader = Annotated[Caller, requires(Ability.ALERTS_READ)]
Writer = Annotated[Caller, requires(Ability.ALERTS_WRITE)]
OrganizationFilter = Annotated[str | None, Query(max_length=20, description="Only this organization.")]


class ShardlynAlertRuleCreate(AlertRuleCreate):
    """POST /v1/alerts/rules."""

    organization_id: int | str | None = Field(default=None, description="Default: the caller's organization.")


class ShardlynAlertRule(BaseModel):
    """An alert rule."""

    id: str
    organization_id: str
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
    last_notified_at: IsoSeconds | None
    created_at: IsoSeconds
    updated_at: IsoSeconds

    @classmethod
    def of(cls, found: AlertRuleRead) -> ShardlynAlertRule:
        """Render a rule."""
        return cls(**found.model_dump(exclude={"id", "uuid", "project_id"}), id=found.uuid,
                   organization_id=str(found.project_id))


class ShardlynAlertRuleList(BaseModel):
    """Rules, oldest first."""

    rules: list[ShardlynAlertRule]
    total: int


class ShardlynAlert(BaseModel):
    """An alert."""

    id: str
    rule_id: str | None
    organization_id: str
    name: str
    status: AlertStatus
    severity: Severity
    target_type: TargetType
    target_id: str
    target_name: str
    metric: Metric
    operator: Operator
    threshold: float
    duration_seconds: int
    value: float | None
    message: str
    notified: bool
    in_app: bool
    acknowledged: bool
    acknowledged_at: IsoSeconds | None
    opened_at: IsoSeconds
    resolved_at: IsoSeconds | None

    @classmethod
    def of(cls, found: AlertRead) -> ShardlynAlert:
        """Render an alert."""
        return cls(id=found.uuid, rule_id=found.rule_uuid, organization_id=str(found.project_id),
                   name=found.rule_name, status=found.status, severity=found.severity, target_type=found.target_type,
                   target_id=found.target_id, target_name=found.target_name, metric=found.metric,
                   operator=found.operator, threshold=found.threshold, duration_seconds=found.duration_seconds,
                   value=found.value, message=found.message, notified=found.notified, in_app=found.in_app,
                   acknowledged=found.acknowledged_at is not None, acknowledged_at=found.acknowledged_at,
                   opened_at=found.opened_at, resolved_at=found.resolved_at)


class ShardlynAlertList(BaseModel):
    """Alerts, newest first, and how many match in all."""

    alerts: list[ShardlynAlert]
    total: int


class UnreadCount(BaseModel):
    """In-app alerts nobody acknowledged yet."""

    count: int


@router.get("/rules", response_model=ShardlynAlertRuleList, summary="List rules")
def list_rules(caller: Reader, db: DbSession, organization_id: OrganizationFilter = None) -> ShardlynAlertRuleList:
    """The alert rules of the caller's organizations, oldest first."""
    found = alerts.list_rules(db, caller, admin=caller.is_admin, project_id=organization_filter(organization_id))
    return ShardlynAlertRuleList(rules=[ShardlynAlertRule.of(r) for r in found], total=len(found))


@router.post("/rules", status_code=201, response_model=ShardlynAlertRule, summary="Create rule")
def create_rule(body: ShardlynAlertRuleCreate, caller: Writer, db: DbSession) -> ShardlynAlertRule:
    """Watch a metric of an instance (or, for administrators, of a node)."""
    project = chosen_organization(body.organization_id, caller.project_id)
    data = AlertRuleCreate.model_validate(body.model_dump(exclude={"organization_id"}))
    return ShardlynAlertRule.of(alerts.create_rule(db, caller, project, data, admin=caller.is_admin))


@router.get("/rules/{rule_id}", response_model=ShardlynAlertRule, summary="Get rule")
def get_rule(rule_id: str, caller: Reader, db: DbSession) -> ShardlynAlertRule:
    """One alert rule."""
    return ShardlynAlertRule.of(alerts.get_rule(db, caller, rule_id, admin=caller.is_admin))


@router.put("/rules/{rule_id}", response_model=ShardlynAlertRule, summary="Update rule")
def update_rule(rule_id: str, body: AlertRuleUpdate, caller: Writer, db: DbSession) -> ShardlynAlertRule:
    """Change the fields sent."""
    return ShardlynAlertRule.of(alerts.update_rule(db, caller, rule_id, body, admin=caller.is_admin))


@router.delete("/rules/{rule_id}", status_code=204, summary="Delete rule")
def delete_rule(rule_id: str, caller: Writer, db: DbSession) -> Response:
    """Remove a rule; its alerts stay."""
    alerts.delete_rule(db, caller, rule_id, admin=caller.is_admin)
    return Response(status_code=204)


@router.get("", response_model=ShardlynAlertList, summary="List alerts")
def list_alerts(
    caller: Reader,
    db: DbSession,
    organization_id: OrganizationFilter = None,
    status: Annotated[AlertStatus | None, Query(description="Only alerts in this status.")] = None,
    acknowledged: Annotated[bool | None, Query(description="Only acknowledged (true) or unread (false) ones.")] = None,
    limit: Annotated[int | None, Query(ge=1, le=500, description="At most this many; default all.")] = None,
    offset: Offset = 0,
) -> ShardlynAlertList:
    """The alerts of the caller's organizations, newest first."""
    page = alerts.list_alerts(db, caller, admin=caller.is_admin, project_id=organization_filter(organization_id),
                              status=status, acknowledged=acknowledged, limit=limit, offset=offset)
    return ShardlynAlertList(alerts=[ShardlynAlert.of(a) for a in page.items], total=page.total)


@router.get("/unread-count", response_model=UnreadCount, summary="Unread count")
def unread_count(caller: Reader, db: DbSession, organization_id: OrganizationFilter = None) -> UnreadCount:
    """How many in-app alerts nobody acknowledged yet."""
    return UnreadCount(count=alerts.unread_count(db, caller, admin=caller.is_admin,
                                                 project_id=organization_filter(organization_id)))


@router.get("/{alert_id}", response_model=ShardlynAlert, summary="Get alert")
def get_alert(alert_id: str, caller: Reader, db: DbSession) -> ShardlynAlert:
    """One alert."""
    return ShardlynAlert.of(alerts.get_alert(db, caller, alert_id, admin=caller.is_admin))


@router.post("/{alert_id}/ack", response_model=ShardlynAlert, summary="Acknowledge alert")
def acknowledge_alert(alert_id: str, caller: Writer, db: DbSession) -> ShardlynAlert:
    """Mark an alert read."""
    return ShardlynAlert.of(alerts.acknowledge(db, caller, alert_id, admin=caller.is_admin))
