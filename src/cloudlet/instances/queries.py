"""How every surface reads servers: one statement per list or detail, whatever the list's length.

The read model is an instance read in one statement with its plan (and the plan's category), region,
template, node, the subscription that pays for it, its wallet's currency and the action that holds it. The
tenancy rule lives here and nowhere else: a caller reads the servers of the projects it is a member
of (only the one its credential is fenced to, when it is fenced), never a deleted one. The control
plane's own reads across every project (the metrics sampler, the operators' /metrics) are here too,
so no other domain reads the instances or nodes tables.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Integer, Row, Select, Subquery, and_, bindparam, func, select
from sqlalchemy.orm import Session, aliased

from cloudlet.billing.models import Pool, Subscription, Wallet
from cloudlet.catalog.models import OsTemplate, Plan, PlanCategory, Region
from cloudlet.instances import actions
from cloudlet.instances.models import Action, ActionStatus, ActionTask, Instance, InstanceStatus
from cloudlet.instances.schemas import (
    ActionRead,
    BandwidthTarget,
    CurrentAction,
    InstancePage,
    InstanceRead,
    PlacedGuest,
    SeriesIdentity,
    TaskRead,
)
from cloudlet.kit import ids, money
from cloudlet.kit.errors import NotFound
from cloudlet.nodes.models import Node
from cloudlet.projects import service as projects
from cloudlet.projects.models import Membership
from cloudlet.projects.schemas import Actor


class InstanceBrief(NamedTuple):
    """A server as the control plane's reads across projects name it."""

    id: int
    uuid: str
    name: str
    project_id: int
    node_id: int | None


ACTIVE: list[InstanceStatus] = [s for s in InstanceStatus if s is not InstanceStatus.DELETED]
BASE = money.BASE_CURRENCY


def _looked_up(column: Any, condition: ColumnElement[bool]) -> Any:
    """One column of a catalogue row the instance points at, as a correlated scalar subquery.

    The small tables (plans, regions, templates, nodes, wallets) are read this way rather than joined:
    each such subquery is planned on its own, where PostgreSQL plans ten joined tables in several
    milliseconds per request (more than running the statement takes).
    """
    return select(column).where(condition).correlate(Instance).scalar_subquery()


_PLAN = Plan.id == Instance.plan_id
# the columns of the read model beside the Instance row itself, in the order _of reads them
_COLUMNS = (_looked_up(Plan.code, _PLAN), _looked_up(Plan.name, _PLAN),
            _looked_up(PlanCategory.code, and_(_PLAN, PlanCategory.id == Plan.category_id)),
            _looked_up(Plan.monthly_price, _PLAN), _looked_up(Plan.bandwidth_gb, _PLAN),
            _looked_up(Region.code, Region.id == Instance.region_id),
            _looked_up(Region.name, Region.id == Instance.region_id),
            _looked_up(OsTemplate.code, OsTemplate.id == Instance.template_id),
            _looked_up(Node.name, Node.id == Instance.node_id),
            Subscription.billed_till, Subscription.started_at, Subscription.price_cents,
            _looked_up(Wallet.currency, and_(Wallet.project_id == Instance.project_id, Wallet.pool == Pool.MAIN)),
            Action.id, Action.command, Action.progress, Action.current_task)
_WIDTH = 1 + len(_COLUMNS)


# --- the tenancy rule -----------------------------------------------------------------------------


def readable(session: Session, actor: Actor, project_id: int | None = None) -> ColumnElement[bool]:
    """Which servers the actor may read: those of its projects (of one, when named), never a deleted one.

    A project named that the actor is not in (or is fenced away from) is a NotFound, as everywhere.
    """
    if project_id is not None:
        projects.require_membership(session, actor.user_id, project_id, fence=actor.project_scope)
        reach: ColumnElement[bool] = Instance.project_id == project_id
    else:
        reach = _members_reach(actor.user_id, actor.project_scope)
    return reach


def _members_reach(user_id: Any, fence: Any | None) -> ColumnElement[bool]:
    """The servers of the user's projects (of the fence only, when there is one); values or bound parameters.

    A subquery rather than a list read first: one statement, and a membership ended a moment ago counts.
    """
    member_of = select(Membership.project_id).where(Membership.user_id == user_id).scalar_subquery()
    reach = Instance.project_id.in_(member_of)
    return reach if fence is None else and_(reach, Instance.project_id == fence)


# --- the read model -------------------------------------------------------------------------------


def _joined(*extra: Any, page: Subquery | None = None) -> Select[*tuple[Any, ...]]:
    """The read model's statement: an instance with everything every surface renders of it.

    With a page (a subquery of instance ids), the statement starts from those ids: the database then
    joins only the page's servers, where a filter on the joined whole lets it join every server first.
    """
    query = select(Instance, *_COLUMNS, *extra)
    if page is not None:
        query = query.select_from(page).join(Instance, Instance.id == page.c.id)
    return (query
            .outerjoin(Subscription, Subscription.reference == Instance.uuid)
            .outerjoin(Action, Action.id == Instance.locked_action_id)
            # the request may hold a row it read earlier; the read model shows what the database says now
            .execution_options(populate_existing=True))


def _of(row: Row[Any]) -> InstanceRead:
    """One row of the read model's statement as an InstanceRead."""
    (instance, plan_code, plan_name, category, monthly_price, bandwidth_gb, region_code, region_name, template_code,
     node_name, billed_till, subscription_started_at, price_cents, currency, action_id, command, progress,
     current_task) = tuple(row)[:_WIDTH]
    sub = billed_till is not None
    held = (CurrentAction(id=action_id, command=command, progress=progress, current_task=current_task)
            if action_id is not None else None)
    return InstanceRead(
        id=instance.id, uuid=instance.uuid, project_id=instance.project_id, name=instance.name,
        hostname=instance.hostname, status=instance.status, status_reason=instance.status_reason,
        plan_id=instance.plan_id, plan_code=plan_code, plan_name=plan_name, category=category,
        monthly_price_cents=monthly_price, hourly_price=money.format_hourly(monthly_price, BASE),
        bandwidth_gb=bandwidth_gb, region_code=region_code, region_name=region_name,
        template_id=instance.template_id, template_code=template_code, os_name=instance.os_name,
        billing_cycle=instance.billing_cycle, vcpus=instance.vcpus, memory_mib=instance.memory_mib,
        disk_gib=instance.disk_gib, ipv4=instance.ipv4, ipv6=instance.ipv6, node_name=node_name,
        locked=instance.locked_action_id is not None, action=held, allowed_actions=actions.allowed(instance),
        webhook_configured=instance.webhook_url is not None, billed_till=billed_till,
        subscription_started_at=subscription_started_at, price_cents=price_cents,
        currency=currency if sub else None, delete_at=instance.delete_at, created_at=instance.created_at,
        updated_at=instance.updated_at, provisioned_at=instance.provisioned_at, deleted_at=instance.deleted_at)


def _key(ident: int | str) -> ColumnElement[bool]:
    found = ids.id_or_key(ident)
    return Instance.id == found if isinstance(found, int) else Instance.uuid == found


@functools.cache
def _listing(by_project: bool, fenced: bool, in_region: bool, limited: bool) -> tuple[Select[Any], Select[Any]]:
    """The page and count statements of one shape of list, built once with bound parameters.

    Why once: building the read model's statement (its coercions and cache key) cost a list request more
    than running it. The tenancy rule is readable()'s: the servers of the caller's projects (of the one its
    credential is fenced to), or of one project whose membership the caller checked first.
    """
    reach = (Instance.project_id == bindparam("project_id") if by_project
             else _members_reach(bindparam("user_id"), bindparam("fence") if fenced else None))
    conditions = [reach, Instance.status.in_(bindparam("statuses", expanding=True))]
    if in_region:
        conditions.append(Instance.region_id.in_(
            select(Region.id).where(Region.code == bindparam("region")).scalar_subquery()))
    # the page's ids first, from the instances table alone, then the joins for those ids only: joined
    # first, both databases join every server of the project and sort them all to keep fifty
    page = (select(Instance.id).where(*conditions).order_by(Instance.id.desc())
            .offset(bindparam("offset", type_=Integer)))
    if limited:
        page = page.limit(bindparam("limit", type_=Integer))
    query = _joined(page=page.subquery("page")).order_by(Instance.id.desc())
    return query, select(func.count()).select_from(Instance).where(*conditions)


def list_instances(session: Session, actor: Actor, *, project_id: int | None = None,
                   statuses: list[InstanceStatus] | None = None, region: str | None = None,
                   limit: int | None = None, offset: int = 0) -> InstancePage:
    """A page of the actor's servers, newest first, and how many match: two statements, whatever the page."""
    wanted = [s for s in statuses if s is not InstanceStatus.DELETED] if statuses else ACTIVE
    if not wanted:  # only deleted ones were asked for, and those are not listed
        return InstancePage(items=[], total=0)
    params: dict[str, Any] = {"statuses": wanted, "offset": offset, "limit": limit, "region": region}
    if project_id is not None:
        projects.require_membership(session, actor.user_id, project_id, fence=actor.project_scope)
        params["project_id"] = project_id
    else:
        params.update(user_id=actor.user_id, fence=actor.project_scope)
    query, count = _listing(project_id is not None, actor.project_scope is not None, region is not None,
                            limit is not None)
    items = [_of(row) for row in session.execute(query, params)]
    whole = limit is None and offset == 0  # the whole list is here: nothing more to count
    return InstancePage(items=items, total=len(items) if whole else int(session.scalar(count, params) or 0))


def get_instance(session: Session, actor: Actor, ident: int | str, *, include_deleted: bool = False) -> InstanceRead:
    """One of the actor's servers by id or uuid, in one statement (404 for any other, and for deleted ones)."""
    query = _joined().where(_key(ident), readable(session, actor))
    if not include_deleted:
        query = query.where(Instance.status != InstanceStatus.DELETED)
    row = session.execute(query).first()
    if row is None:
        raise NotFound("instance", ident, code="VPS_NOT_FOUND")
    return _of(row)


def instance_read(session: Session, instance_id: int) -> InstanceRead:
    """A server the caller already holds (a write checked its tenancy), as it stands after the write's flush."""
    row = session.execute(_joined().where(Instance.id == instance_id)).first()
    if row is None:
        raise NotFound("instance", instance_id)
    return _of(row)


def build_of(session: Session, actor: Actor, ident: int | str) -> tuple[InstanceRead, ActionRead | None]:
    """A server with its newest create action and that action's tasks, in one statement (so one snapshot).

    Read in two, a build that commits between them shows `completed` beside a server still deploying.
    """
    build = aliased(Action, name="build")
    newest = (select(func.max(Action.id)).where(Action.instance_id == Instance.id, Action.command == "create")
              .correlate(Instance).scalar_subquery())
    query = (_joined(build.id, build.command, build.status, build.progress, build.current_task, build.error,
                     build.started_at, build.finished_at, ActionTask.name, ActionTask.position, ActionTask.status,
                     ActionTask.detail, ActionTask.started_at, ActionTask.finished_at)
             .outerjoin(build, build.id == newest)
             .outerjoin(ActionTask, ActionTask.action_id == build.id)
             .where(_key(ident), readable(session, actor), Instance.status != InstanceStatus.DELETED)
             .order_by(ActionTask.position))
    rows = list(session.execute(query))
    if not rows:
        raise NotFound("instance", ident, code="VPS_NOT_FOUND")
    found = _of(rows[0])
    first = tuple(rows[0])[_WIDTH:]
    if first[0] is None:
        return found, None
    tasks = [TaskRead(name=t[8], order=t[9], status=t[10], detail=t[11], started_at=t[12], finished_at=t[13])
             for t in (tuple(row)[_WIDTH:] for row in rows) if t[8] is not None]
    action = ActionRead(id=first[0], command=first[1], status=first[2], progress=first[3], current_task=first[4],
                        error=first[5], started_at=first[6], finished_at=first[7], tasks=tasks)
    return found, action


# --- the control plane's reads across every project -------------------------------------------------


def running_guests(session: Session) -> list[PlacedGuest]:
    """Every running server with a guest on a node, by node: what the metrics sampler reads."""
    query = (select(Node.id, Node.name, Node.uri, Instance.id, Instance.guest_name)
             .join(Node, Instance.node_id == Node.id)
             .where(Instance.status == InstanceStatus.RUNNING).order_by(Node.id, Instance.id))
    return [PlacedGuest(*row) for row in session.execute(query)]


GUEST_HELD = (InstanceStatus.RUNNING, InstanceStatus.STOPPED, InstanceStatus.SUSPENDED)


def bandwidth_targets(session: Session) -> list[BandwidthTarget]:
    """Every server whose guest stands on a node and that no action holds, with its plan's cap and transfer and its
    throttle, by node, in one statement: what the transfer quota round reads."""
    query = (select(Node.id, Node.uri, Instance.id, Instance.uuid, Instance.name, Instance.project_id,
                    Instance.guest_name, Plan.bandwidth_mbit, Plan.bandwidth_gb, Instance.throttled_until)
             .join(Node, Instance.node_id == Node.id).join(Plan, Plan.id == Instance.plan_id)
             .where(Instance.status.in_(GUEST_HELD), Instance.locked_action_id.is_(None))
             .order_by(Node.id, Instance.id))
    return [BandwidthTarget._make(row) for row in session.execute(query)]


def plan_caps(session: Session, uuids: Iterable[str]) -> list[tuple[str, int | None, datetime | None]]:
    """(uuid, plan's network cap, transfer throttle's end) of these servers, in one statement."""
    query = (select(Instance.uuid, Plan.bandwidth_mbit, Instance.throttled_until)
             .join(Plan, Plan.id == Instance.plan_id).where(Instance.uuid.in_(list(uuids))))
    return [(uuid, mbit, until) for uuid, mbit, until in session.execute(query)]


def status_counts(session: Session) -> list[tuple[str, int]]:
    """How many servers are in each status (deleted ones left out)."""
    query = (select(Instance.status, func.count()).where(Instance.status != InstanceStatus.DELETED)
             .group_by(Instance.status).order_by(Instance.status))
    return [(InstanceStatus(row[0]).value, int(row[1])) for row in session.execute(query)]


def running_action_count(session: Session) -> int:
    """How many actions are running now."""
    query = select(func.count()).select_from(Action).where(Action.status == ActionStatus.RUNNING)
    return int(session.scalar(query) or 0)


def instances_on_nodes(session: Session, node_ids: Iterable[int]) -> dict[int, list[int]]:
    """The servers (not deleted) placed on each of these nodes, by node, in one statement."""
    wanted = list(set(node_ids))
    if not wanted:
        return {}
    query = (select(Instance.node_id, Instance.id)
             .where(Instance.node_id.in_(wanted), Instance.status != InstanceStatus.DELETED)
             .order_by(Instance.node_id, Instance.id))
    found: dict[int, list[int]] = {}
    for node_id, instance_id in session.execute(query):
        if node_id is not None:  # always: the statement asks for placed servers
            found.setdefault(node_id, []).append(instance_id)
    return found


def briefs(session: Session, uuids: Iterable[str]) -> dict[str, InstanceBrief]:
    """Who these servers are and where they run, for those not deleted, by uuid, in one statement (what alert
    rules name their targets by)."""
    wanted = list(set(uuids))
    if not wanted:
        return {}
    query = (select(Instance.id, Instance.uuid, Instance.name, Instance.project_id, Instance.node_id)
             .where(Instance.uuid.in_(wanted), Instance.status != InstanceStatus.DELETED))
    return {row[1]: InstanceBrief(*row) for row in session.execute(query)}


def series_identities(session: Session, instance_ids: Iterable[int]) -> dict[int, SeriesIdentity]:
    """Who these servers are (uuid, name, project, node), for those not deleted and placed on a node."""
    wanted = list(set(instance_ids))
    if not wanted:
        return {}
    query = (select(Instance.id, Instance.uuid, Instance.name, Instance.project_id, Node.name)
             .join(Node, Instance.node_id == Node.id)
             .where(Instance.id.in_(wanted), Instance.status != InstanceStatus.DELETED))
    return {row[0]: SeriesIdentity(uuid=row[1], name=row[2], project_id=row[3], node=row[4])
            for row in session.execute(query)}
