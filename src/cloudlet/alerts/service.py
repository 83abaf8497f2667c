"""Alert rules, and the evaluation that opens, resolves and tells of alerts.

A rule belongs to a project and watches one metric of one target: an instance of that project, or (for
administrators only: nodes are the operator's) a node. What each metric is, and for which targets it exists:

- cpu_usage: percent; of an instance's vCPUs (the sampler's raw points), or of a node's vCPUs, summed over the
  guests on it round by round (the host's own processes are not counted);
- memory_usage: percent of the memory an instance was given, as its balloon driver reports it;
- disk_read, disk_write, network_in, network_out: bytes per second, of an instance;
- node_down: 1 while a node's heartbeat fails (since its last good one), or has said nothing for NODE_STALE;
- action_failures: how many actions of the target (a node: its own and its instances') failed in the last
  duration_seconds: that window is what the rule counts over, and the count is judged as it is now.

Any other pairing is refused (422) when the rule is written. The sampled metrics judge the raw points of the
last hour (metrics/service.py keeps about an hour of them), so their duration is at most RAW_WINDOW.

The condition holds when every sample of an unbroken run ending with the newest one satisfies it, and that
run covers the whole duration (a sample covers the interval its rates were measured over); a newest sample
older than SAMPLE_STALE (a stopped guest, a silent sampler) holds nothing. When a rule's condition starts
holding, an alert opens (one open alert per rule); when it stops, the alert resolves. Notifications go out
when an alert opens, at most once per cooldown_seconds per rule: an alert that opens again within the
cooldown (a flapping condition) is recorded, in the app too, but sends nothing. Telling is: the alert itself
(unread in the app until acknowledged, when notify_in_app), an email to the members of the project who can
see the target (every member for an instance, the administrators among them for a node) when notify_email,
and an alert.opened event for the integrations to deliver; its alert.resolved event follows when it resolves.

A round reads a bounded number of statements whatever the number of rules and samples: the rules, their open
alerts, the instances named, their raw points, the nodes, their guests' points, the failed actions and the
members to mail.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from cloudlet.actions import service as actions
from cloudlet.actions.schemas import ActionFailure
from cloudlet.alerts import repository
from cloudlet.alerts.models import Alert, AlertRule, AlertStatus, Metric, Operator, TargetType
from cloudlet.alerts.schemas import (
    AlertPage,
    AlertRead,
    AlertRuleCreate,
    AlertRuleRead,
    AlertRuleUpdate,
    EvaluationReport,
    Sample,
    Verdict,
)
from cloudlet.events import service as events
from cloudlet.events.schemas import AlertNotice, EventKind
from cloudlet.instances import queries as instances
from cloudlet.instances.queries import InstanceBrief
from cloudlet.kit import clock
from cloudlet.kit.errors import Forbidden, Invalid, NotFound
from cloudlet.kit.ids import parse_id
from cloudlet.mail import service as mail
from cloudlet.metrics import service as metrics
from cloudlet.metrics.schemas import MetricPointRead
from cloudlet.nodes import service as nodes
from cloudlet.nodes.models import NodeStatus
from cloudlet.nodes.schemas import NodeRead
from cloudlet.projects import service as projects
from cloudlet.projects.schemas import Actor

SAMPLED = frozenset({Metric.CPU_USAGE, Metric.MEMORY_USAGE, Metric.DISK_READ, Metric.DISK_WRITE, Metric.NETWORK_IN,
                     Metric.NETWORK_OUT})
PERCENT = frozenset({Metric.CPU_USAGE, Metric.MEMORY_USAGE})
METRICS: dict[TargetType, tuple[Metric, ...]] = {
    TargetType.INSTANCE: (Metric.CPU_USAGE, Metric.MEMORY_USAGE, Metric.DISK_READ, Metric.DISK_WRITE,
                          Metric.NETWORK_IN, Metric.NETWORK_OUT, Metric.ACTION_FAILURES),
    TargetType.NODE: (Metric.NODE_DOWN, Metric.CPU_USAGE, Metric.ACTION_FAILURES),
}
RAW_WINDOW = 3600  # seconds of raw samples the metrics history keeps (about an hour)
SAMPLE_STALE = timedelta(minutes=3)  # a newest sample older than this says nothing of now
NODE_STALE = timedelta(seconds=60)  # six missed heartbeats (one each ten seconds): the node is taken as down
CONTIGUOUS = timedelta(seconds=15)  # two samples further apart than this (a guest stopped between) break a run
LOOKBACK_MARGIN = timedelta(minutes=15)  # the sample straddling a window's start, whatever the sampling interval
SYMBOLS = {Operator.GT: ">", Operator.GTE: ">=", Operator.LT: "<", Operator.LTE: "<="}
MAIL_KIND = "alert"


# --- rules ----------------------------------------------------------------------------------------


def _rule_read(row: AlertRule) -> AlertRuleRead:
    return AlertRuleRead.model_validate(row)


def _alert_read(row: Alert, rule_uuid: str | None) -> AlertRead:
    return AlertRead(
        id=row.id, uuid=row.uuid, project_id=row.project_id, rule_uuid=rule_uuid, status=row.status,
        rule_name=row.rule_name, target_type=row.target_type, target_id=row.target_id, target_name=row.target_name,
        metric=row.metric, operator=row.operator, threshold=row.threshold, duration_seconds=row.duration_seconds,
        severity=row.severity, in_app=row.in_app, value=row.value, message=row.message, notified=row.notified,
        opened_at=row.opened_at, resolved_at=row.resolved_at, acknowledged_at=row.acknowledged_at)


def _require_admin_for_nodes(target_type: TargetType, admin: bool) -> None:
    if target_type is TargetType.NODE and not admin:
        raise Forbidden("Only administrators can watch nodes: they are the operator's.", code="ADMIN_ONLY")


def _check_condition(data: AlertRuleCreate) -> None:
    """Refuse a metric the target type has no samples of, and a threshold or duration it cannot mean."""
    allowed = METRICS[data.target_type]
    if data.metric not in allowed:
        raise Invalid("metric", f"{data.metric.value} is not sampled for {data.target_type.value}s; use one of "
                                f"{', '.join(m.value for m in allowed)}.")
    if data.metric in PERCENT and not 0 <= data.threshold <= 100:
        raise Invalid("threshold", f"{data.metric.value} is a percentage: the threshold must be between 0 and 100.")
    if data.metric is Metric.NODE_DOWN and not 0 <= data.threshold <= 1:
        raise Invalid("threshold", "node_down is 1 while the node is down and 0 otherwise: the threshold must be "
                                   "between 0 and 1.")
    if data.metric not in PERCENT and data.metric is not Metric.NODE_DOWN and data.threshold < 0:
        raise Invalid("threshold", f"{data.metric.value} is never negative: the threshold must be 0 or more.")
    if data.metric in SAMPLED and data.duration_seconds > RAW_WINDOW:
        raise Invalid("duration_seconds", f"{data.metric.value} is judged over the samples of the last hour: "
                                          f"duration_seconds must be at most {RAW_WINDOW}.")
    if data.metric is Metric.ACTION_FAILURES and data.duration_seconds < 1:
        raise Invalid("duration_seconds", "action_failures counts the failed actions of the last duration_seconds: "
                                          "it must be at least 1.")


def _check_target(session: Session, actor: Actor, project_id: int, data: AlertRuleCreate, admin: bool) -> None:
    """Refuse a target that does not exist, or that the rule's project may not watch."""
    _require_admin_for_nodes(data.target_type, admin)
    if data.target_type is TargetType.NODE:
        node_id = parse_id(data.target_id)
        if node_id is None:
            raise NotFound("node", data.target_id)
        nodes.get_node(session, node_id)  # NotFound for a node that does not exist
        return
    brief = instances.briefs(session, [data.target_id]).get(data.target_id)
    if brief is None or brief.project_id not in projects.in_reach(session, actor):
        raise NotFound("instance", data.target_id, code="VPS_NOT_FOUND")
    if brief.project_id != project_id:
        raise Invalid("target_id", "The instance belongs to another organization than the rule.")


def create_rule(session: Session, actor: Actor, project_id: int, data: AlertRuleCreate, *,
                admin: bool) -> AlertRuleRead:
    """Store a rule of a project the actor is in, after checking its target and condition mean something."""
    projects.in_reach(session, actor, project_id)  # NotFound for a project the actor is not in
    _check_condition(data)
    _check_target(session, actor, project_id, data, admin)
    row = AlertRule(uuid=str(uuid.uuid4()), project_id=project_id, created_by=actor.user_id,
                    last_notified_at=None, **data.model_dump())
    repository.add(session, row)
    return _rule_read(row)


def _is_uuid(text: str) -> bool:
    # what is not a uuid names nothing, and is never sent to the database (PostgreSQL refuses a NUL in text)
    try:
        return str(uuid.UUID(text)) == text.lower()
    except ValueError:
        return False


def _rule(session: Session, actor: Actor, rule_uuid: str, admin: bool, *, lock: bool = False) -> AlertRule:
    row = repository.rule(session, rule_uuid, lock=lock) if _is_uuid(rule_uuid) else None
    if row is None or row.project_id not in projects.in_reach(session, actor):
        raise NotFound("alert rule", rule_uuid)
    _require_admin_for_nodes(row.target_type, admin)
    return row


def list_rules(session: Session, actor: Actor, *, admin: bool, project_id: int | None = None) -> list[AlertRuleRead]:
    """The rules of the actor's projects (of one, when named), oldest first; node rules for administrators only."""
    reach = projects.in_reach(session, actor, project_id)
    return [_rule_read(row) for row in repository.rules(session, reach, nodes=admin)]


def get_rule(session: Session, actor: Actor, rule_uuid: str, *, admin: bool) -> AlertRuleRead:
    """One rule."""
    return _rule_read(_rule(session, actor, rule_uuid, admin))


CONDITION = ("target_type", "target_id", "metric", "operator", "threshold", "duration_seconds")


def update_rule(session: Session, actor: Actor, rule_uuid: str, data: AlertRuleUpdate, *,
                admin: bool) -> AlertRuleRead:
    """Change the fields sent. A changed condition (or a rule switched off) resolves its open alert: what that
    alert said no longer is the rule's."""
    row = _rule(session, actor, rule_uuid, admin, lock=True)
    sent = data.model_dump(exclude_unset=True, exclude_none=True)
    merged = AlertRuleCreate.model_validate(
        {**AlertRuleCreate.model_validate(row, from_attributes=True).model_dump(), **sent})
    _check_condition(merged)
    changed = any(getattr(merged, name) != getattr(row, name) for name in CONDITION)
    if any(name in sent for name in ("target_type", "target_id")):
        _check_target(session, actor, row.project_id, merged, admin)
    for name, value in merged.model_dump().items():
        setattr(row, name, value)
    if changed or not row.enabled:
        found = repository.open_alert(session, row.id)
        if found is not None:
            _resolve(session, row, found, clock.now())
    repository.flush(session)
    return _rule_read(row)


def delete_rule(session: Session, actor: Actor, rule_uuid: str, *, admin: bool) -> None:
    """Remove a rule; its open alert resolves, and its alerts stay (no longer linked to it)."""
    row = _rule(session, actor, rule_uuid, admin, lock=True)
    found = repository.open_alert(session, row.id)
    if found is not None:
        _resolve(session, row, found, clock.now())
    repository.delete(session, row)


# --- alerts ---------------------------------------------------------------------------------------


def list_alerts(session: Session, actor: Actor, *, admin: bool, project_id: int | None = None,
                status: AlertStatus | None = None, acknowledged: bool | None = None, limit: int | None = None,
                offset: int = 0) -> AlertPage:
    """A page of the alerts of the actor's projects (of one, when named), newest first; node alerts for
    administrators only."""
    reach = projects.in_reach(session, actor, project_id)
    rows, total = repository.alerts(session, reach, nodes=admin, status=status, acknowledged=acknowledged,
                                    limit=limit, offset=offset)
    return AlertPage(items=[_alert_read(row, rule_uuid) for row, rule_uuid in rows], total=total)


def _alert(session: Session, actor: Actor, alert_uuid: str, admin: bool) -> tuple[Alert, str | None]:
    found = repository.alert(session, alert_uuid) if _is_uuid(alert_uuid) else None
    if found is None or found[0].project_id not in projects.in_reach(session, actor):
        raise NotFound("alert", alert_uuid)
    _require_admin_for_nodes(found[0].target_type, admin)
    return found


def get_alert(session: Session, actor: Actor, alert_uuid: str, *, admin: bool) -> AlertRead:
    """One alert."""
    return _alert_read(*_alert(session, actor, alert_uuid, admin))


def unread_count(session: Session, actor: Actor, *, admin: bool, project_id: int | None = None) -> int:
    """How many in-app alerts of the actor's projects (of one, when named) nobody acknowledged yet."""
    return repository.unread(session, projects.in_reach(session, actor, project_id), nodes=admin)


def acknowledge(session: Session, actor: Actor, alert_uuid: str, *, admin: bool) -> AlertRead:
    """Mark an alert read; acknowledging it again changes nothing. It stays open while its condition holds."""
    row, rule_uuid = _alert(session, actor, alert_uuid, admin)
    if row.acknowledged_at is None:
        row.acknowledged_at, row.acknowledged_by = clock.now(), actor.user_id
        repository.flush(session)
    return _alert_read(row, rule_uuid)


# --- judging --------------------------------------------------------------------------------------


def compare(operator: Operator, value: float, threshold: float) -> bool:
    """Whether a value is on the bad side of a threshold."""
    if operator is Operator.GT:
        return value > threshold
    if operator is Operator.GTE:
        return value >= threshold
    if operator is Operator.LT:
        return value < threshold
    return value <= threshold


def held(samples: Sequence[Sample], operator: Operator, threshold: float, duration: timedelta,
         now: datetime) -> Verdict:
    """Whether the condition held over the whole duration up to now: the newest sample is fresh, and the unbroken
    run of samples that satisfy it, ending with the newest, began at least `duration` ago. Oldest first."""
    if not samples:
        return Verdict(holds=False, value=None)
    newest = samples[-1]
    if newest.end < now - SAMPLE_STALE:
        return Verdict(holds=False, value=None)
    since: datetime | None = None
    for sample in reversed(samples):
        if not compare(operator, sample.value, threshold):
            break
        if since is not None and sample.end < since - CONTIGUOUS:
            break
        since = sample.start if since is None else min(since, sample.start)
    return Verdict(holds=since is not None and since <= now - duration, value=newest.value)


def _value(point: MetricPointRead, metric: Metric) -> float | None:
    if metric is Metric.CPU_USAGE:
        return point.cpu_percent
    if metric is Metric.MEMORY_USAGE:
        if point.memory_used_mib is None or point.memory_mib <= 0:
            return None  # the guest's balloon driver does not say
        return round(100.0 * point.memory_used_mib / point.memory_mib, 2)
    rates = {Metric.DISK_READ: point.disk_read_bps, Metric.DISK_WRITE: point.disk_write_bps,
             Metric.NETWORK_IN: point.net_rx_bps, Metric.NETWORK_OUT: point.net_tx_bps}
    return rates[metric]


def instance_samples(points: Iterable[MetricPointRead], metric: Metric) -> list[Sample]:
    """An instance's raw points as samples of one metric (points that do not give it left out), oldest first."""
    found = []
    for point in points:
        value = _value(point, metric)
        if value is not None:
            found.append(Sample(point.at - timedelta(seconds=point.seconds), point.at, value))
    return found


def node_down_samples(node: NodeRead, now: datetime) -> list[Sample]:
    """node_down as one sample up to now: 1 since the node's last good heartbeat when its heartbeat fails, or
    since NODE_STALE after it when none came since; else 0 since that heartbeat."""
    last = node.last_heartbeat_at or node.created_at
    if node.health is NodeStatus.UNREACHABLE:
        return [Sample(min(last, now), now, 1.0)]
    if now - last >= NODE_STALE:
        return [Sample(last + NODE_STALE, now, 1.0)]
    return [Sample(min(last, now), now, 0.0)]


@dataclass
class Observations:
    """What one round read of the targets its rules watch."""

    now: datetime
    instances: dict[str, InstanceBrief] = field(default_factory=dict)  # by uuid
    points: dict[int, list[MetricPointRead]] = field(default_factory=dict)  # raw points by instance id
    nodes: dict[int, NodeRead] = field(default_factory=dict)
    node_cpu: dict[int, list[Sample]] = field(default_factory=dict)
    on_nodes: dict[int, list[int]] = field(default_factory=dict)  # instance ids by node id
    failures: list[ActionFailure] = field(default_factory=list)

    def target_name(self, rule: AlertRule) -> str:
        """The name of what the rule watches (its id when it is gone)."""
        if rule.target_type is TargetType.NODE:
            node_id = parse_id(rule.target_id)
            node = self.nodes.get(node_id) if node_id is not None else None
            return node.name if node is not None else rule.target_id
        brief = self.instances.get(rule.target_id)
        return brief.name if brief is not None else rule.target_id


def observe(session: Session, rules: Sequence[AlertRule], now: datetime) -> Observations:
    """Read what the rules need, a bounded number of statements whatever their number."""
    seen = Observations(now=now)
    sampled = [r for r in rules if r.metric in SAMPLED]
    since = now - timedelta(seconds=max((r.duration_seconds for r in sampled), default=0)) - LOOKBACK_MARGIN
    seen.instances = instances.briefs(session, (r.target_id for r in rules if r.target_type is TargetType.INSTANCE))
    watched = [seen.instances[r.target_id].id for r in sampled
               if r.target_type is TargetType.INSTANCE and r.target_id in seen.instances]
    seen.points = metrics.raw_history(session, watched, since)
    node_rules = [r for r in rules if r.target_type is TargetType.NODE]
    if node_rules:
        seen.nodes = {node.id: node for node in nodes.list_nodes(session)}
        cpu = {node_id: seen.nodes[node_id].capacity.vcpu for r in node_rules if r.metric is Metric.CPU_USAGE
               and (node_id := parse_id(r.target_id)) is not None and node_id in seen.nodes}
        seen.node_cpu = {node_id: [Sample(p.start, p.end, p.cpu_percent) for p in points]
                         for node_id, points in metrics.node_cpu_history(session, cpu, since).items()}
    counted = [r for r in rules if r.metric is Metric.ACTION_FAILURES]
    if counted:
        node_ids = {node_id for r in counted if r.target_type is TargetType.NODE
                    and (node_id := parse_id(r.target_id)) is not None}
        seen.on_nodes = instances.instances_on_nodes(session, node_ids)
        instance_ids = {seen.instances[r.target_id].id for r in counted
                        if r.target_type is TargetType.INSTANCE and r.target_id in seen.instances}
        instance_ids |= {i for ids in seen.on_nodes.values() for i in ids}
        window = timedelta(seconds=max(r.duration_seconds for r in counted))
        seen.failures = actions.failures_since(session, now - window, instance_ids=instance_ids, node_ids=node_ids)
    return seen


def _failures(rule: AlertRule, seen: Observations) -> int:
    since = seen.now - timedelta(seconds=rule.duration_seconds)
    if rule.target_type is TargetType.NODE:
        node_id = parse_id(rule.target_id)
        if node_id is None or node_id not in seen.nodes:
            return 0
        guests = set(seen.on_nodes.get(node_id, ()))
        return sum(1 for f in seen.failures if f.finished_at >= since
                   and (f.node_id == node_id or f.instance_id in guests))
    brief = seen.instances.get(rule.target_id)
    if brief is None:
        return 0
    return sum(1 for f in seen.failures if f.finished_at >= since and f.instance_id == brief.id)


def judge(rule: AlertRule, seen: Observations) -> Verdict:
    """Whether a rule's condition holds now, by what the round read."""
    if rule.metric is Metric.ACTION_FAILURES:
        count = _failures(rule, seen)
        return Verdict(holds=compare(rule.operator, count, rule.threshold), value=float(count))
    duration = timedelta(seconds=rule.duration_seconds)
    if rule.target_type is TargetType.NODE:
        node_id = parse_id(rule.target_id)
        node = seen.nodes.get(node_id) if node_id is not None else None
        if node is None:
            return Verdict(holds=False, value=None)  # removed: nothing to watch
        if rule.metric is Metric.NODE_DOWN:
            return held(node_down_samples(node, seen.now), rule.operator, rule.threshold, duration, seen.now)
        return held(seen.node_cpu.get(node.id, []), rule.operator, rule.threshold, duration, seen.now)
    brief = seen.instances.get(rule.target_id)
    if brief is None:
        return Verdict(holds=False, value=None)  # deleted: its alert resolves
    samples = instance_samples(seen.points.get(brief.id, []), rule.metric)
    return held(samples, rule.operator, rule.threshold, duration, seen.now)


# --- telling --------------------------------------------------------------------------------------


def _amount(metric: Metric, value: float | None, duration_seconds: int) -> str:
    if value is None:
        return "unknown"
    if metric in PERCENT:
        return f"{value:.1f} %"
    if metric is Metric.NODE_DOWN:
        return "down" if value >= 1 else "up"
    if metric is Metric.ACTION_FAILURES:
        return f"{int(value)} failed action(s) in the last {duration_seconds} s"
    return f"{value:,.0f} B/s"


def describe(rule: AlertRule | Alert, target_name: str, value: float | None) -> str:
    """One line saying what holds: the metric, its value, and the rule's condition."""
    threshold = f"{rule.threshold:g}"
    condition = (f"{SYMBOLS[rule.operator]} {threshold}" if rule.metric is Metric.ACTION_FAILURES
                 else f"{SYMBOLS[rule.operator]} {threshold} for {rule.duration_seconds} s")
    return (f"{rule.metric.value} of {rule.target_type.value} {target_name} is "
            f"{_amount(rule.metric, value, rule.duration_seconds)} ({condition})")[:500]


def _notice(alert: Alert, rule_uuid: str | None) -> AlertNotice:
    return AlertNotice(
        alert_id=alert.uuid, rule_id=rule_uuid, organization_id=alert.project_id, rule_name=alert.rule_name,
        status=alert.status.value, severity=alert.severity.value, target_type=alert.target_type.value,
        target_id=alert.target_id, target_name=alert.target_name, metric=alert.metric.value,
        operator=alert.operator.value, threshold=alert.threshold, duration_seconds=alert.duration_seconds,
        value=alert.value if alert.value is None or math.isfinite(alert.value) else None, message=alert.message,
        opened_at=alert.opened_at, resolved_at=alert.resolved_at)


def _cooled(rule: AlertRule, now: datetime) -> bool:
    return rule.last_notified_at is None or now - rule.last_notified_at >= timedelta(seconds=rule.cooldown_seconds)


def _open(session: Session, rule: AlertRule, verdict: Verdict, target_name: str, now: datetime) -> Alert:
    notify = _cooled(rule, now)
    row = Alert(uuid=str(uuid.uuid4()), project_id=rule.project_id, rule_id=rule.id, open_rule_id=rule.id,
                status=AlertStatus.OPEN, rule_name=rule.name, target_type=rule.target_type, target_id=rule.target_id,
                target_name=target_name[:200], metric=rule.metric, operator=rule.operator, threshold=rule.threshold,
                duration_seconds=rule.duration_seconds, severity=rule.severity, in_app=rule.notify_in_app,
                value=verdict.value, message=describe(rule, target_name, verdict.value), notified=notify,
                opened_at=now)
    repository.add(session, row)
    if notify:
        rule.last_notified_at = now
        events.record(session, EventKind.ALERT_OPENED, project_id=rule.project_id, subject=f"alert:{row.uuid}",
                      payload=_notice(row, rule.uuid))
    return row


def _resolve(session: Session, rule: AlertRule, row: Alert, now: datetime) -> None:
    row.status, row.open_rule_id, row.resolved_at = AlertStatus.RESOLVED, None, now
    repository.flush(session)
    if row.notified:  # integrations heard it open: they hear it end
        events.record(session, EventKind.ALERT_RESOLVED, project_id=row.project_id, subject=f"alert:{row.uuid}",
                      payload=_notice(row, rule.uuid))


def _mail(session: Session, opened: Sequence[tuple[AlertRule, Alert]]) -> int:
    """Email each notified alert of a rule that asks for it to the members who can see its target."""
    wanted = [(rule, row) for rule, row in opened if row.notified and rule.notify_email]
    if not wanted:
        return 0
    contacts = projects.member_contacts(session, (rule.project_id for rule, _ in wanted))
    sent = 0
    for rule, row in wanted:
        addresses = sorted({c.email for c in contacts.get(rule.project_id, [])
                            if c.admin or rule.target_type is TargetType.INSTANCE})
        subject = f"[{row.severity.value.upper()}] {row.rule_name}: {row.target_name}"
        body = (f"The alert rule \"{row.rule_name}\" opened an alert at {row.opened_at:%Y-%m-%d %H:%M:%S} UTC.\n\n"
                f"{row.message}.\n\nSeverity: {row.severity.value}\nAlert: {row.uuid}\n\n"
                f"It resolves by itself once the condition stops holding; acknowledge it to mark it read.\n")
        for address in addresses:
            mail.queue(session, to=address, subject=subject[:300], body=body, kind=MAIL_KIND)
            sent += 1
    return sent


def evaluate(session: Session, now: datetime | None = None) -> EvaluationReport:
    """Judge every enabled rule once: open the alerts whose condition started holding (telling of them, within
    each rule's cooldown), resolve those whose condition stopped, note the newest value of the others."""
    now = now or clock.now()
    rules = repository.enabled_rules(session, lock=True)
    report = EvaluationReport(rules=len(rules))
    if not rules:
        return report
    open_now = repository.open_alerts(session, (rule.id for rule in rules))
    seen = observe(session, rules, now)
    opened: list[tuple[AlertRule, Alert]] = []
    for rule in rules:
        verdict = judge(rule, seen)
        current = open_now.get(rule.id)
        if verdict.holds and current is None:
            opened.append((rule, _open(session, rule, verdict, seen.target_name(rule), now)))
        elif verdict.holds and current is not None:
            current.value = verdict.value
        elif current is not None:
            _resolve(session, rule, current, now)
            report.resolved += 1
    report.opened = len(opened)
    report.notified = sum(1 for _, row in opened if row.notified)
    report.emails = _mail(session, opened)
    repository.flush(session)
    return report

