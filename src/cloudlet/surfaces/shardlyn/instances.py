"""Shardlyn surface: instances (Cloudlet's virtual servers) at /v1/instances.

The reference lists the paths without shapes; these follow Shardlyn's other objects (string ids,
timestamps in seconds with Z, lists under a key, {"error": message} with invalid input as 400).

    GET    /v1/instances        {"instances": [Instance], "total"}, newest first; filters ?organization_id=
                                ?status= (not "deleted": deleted ones are never listed) ?region= (code) and
                                paging ?limit= (1-500; default all) ?offset=
    POST   /v1/instances        201 Instance + "charged_cents" + "root_password" (Idempotency-Key honoured)
    GET    /v1/instances/{id}   Instance
    PUT    /v1/instances/{id}   {"name"} -> Instance (only the display name changes; other fields are ignored)
    DELETE /v1/instances/{id}   200 {"id", "status": "deleting", "refund_cents", "currency"}: deleted now, the
                                unused part of the paid cycle credited to the wallet; the guest is removed
                                by the worker, after which GET answers 404

Instance = {"id" (uuid), "name", "hostname", "status" (Cloudlet's words: provisioning, running, stopped,
starting, stopping, restarting, suspended, error, unknown, deleting), "status_reason", "organization_id",
"plan" (code), "region" (code), "template" (code, null once removed), "os_name", "resources": {"vcpu",
"memory_mib", "disk_gib"}, "ipv4", "ipv6", "billing_cycle", "price_cents" (one cycle, in "currency", the
wallet's), "billed_till", "locked" (an action is running), "action" (while locked, the action holding it:
{"id", "command", "progress"}; else null), "allowed_actions" (what the state allows: boot, shutdown, ...,
delete; empty while locked), "created_at", "updated_at"}.

POST body: {"name", "hostname" (default: the name), "plan" (id or code), "region" (id or code; default:
the first available region offering the plan), "template" (id or code), "ssh_keys" (OpenSSH public
keys), "root_password" (optional: generated and returned once in "root_password", else null),
"billing_cycle" (default "monthly"), "organization_id" (default: the caller's organization)}.
Ids may be sent as strings ("3") or numbers. An empty wallet answers 402, no room on any node 503.

{id} is the instance's uuid (or its numeric id); an instance of an organization the caller is not
in, or a deleted one, answers 404.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from cloudlet.auth.caller import Caller
from cloudlet.instances import build, deletion
from cloudlet.instances import service as instances
from cloudlet.instances.models import InstanceStatus
from cloudlet.instances.schemas import DeletionMode, InstanceCreate
from cloudlet.kit.errors import Invalid
from cloudlet.surfaces.deps import AppSettings, DbSession, requires
from cloudlet.surfaces.idempotency import IdempotencyGuard
from cloudlet.surfaces.params import Offset
from cloudlet.surfaces.shardlyn.instance_schemas import (
    ShardlynInstanceCreate,
    ShardlynInstanceCreated,
    ShardlynInstanceDeleted,
    ShardlynInstanceList,
    ShardlynInstanceRead,
    ShardlynInstanceUpdate,
    instance_ident,
)
from cloudlet.surfaces.shardlyn.organization_schemas import organization_filter
from cloudlet.tokens.abilities import Ability

router = APIRouter(prefix="/v1/instances", tags=["shardlyn"])

Reader = Annotated[Caller, requires(Ability.INSTANCES_READ)]
Writer = Annotated[Caller, requires(Ability.INSTANCES_WRITE)]
Deleter = Annotated[Caller, requires(Ability.INSTANCES_DELETE)]


def _statuses(status: InstanceStatus | None) -> list[InstanceStatus] | None:
    # deleted instances are never listed, and the service drops a "deleted" filter and lists them all
    if status is InstanceStatus.DELETED:
        raise Invalid("status", "Deleted instances are not listed.")
    return [status] if status else None


@router.get("", response_model=ShardlynInstanceList, summary="List instances")
def list_instances(
    caller: Reader,
    db: DbSession,
    organization_id: Annotated[str | None, Query(description="Only this organization.")] = None,
    status: Annotated[InstanceStatus | None, Query(description="Only instances in this status.")] = None,
    region: Annotated[str | None, Query(max_length=100, description="Only this region (code).")] = None,
    limit: Annotated[int | None, Query(ge=1, le=500, description="At most this many; default all.")] = None,
    offset: Offset = 0,
) -> ShardlynInstanceList:
    """The caller's instances, newest first."""
    page = instances.list_instances(db, caller, project_id=organization_filter(organization_id),
                                    statuses=_statuses(status), region=region,
                                    limit=limit, offset=offset)
    return ShardlynInstanceList(instances=[ShardlynInstanceRead.of(i) for i in page.items], total=page.total)


@router.post("", status_code=201, response_model=ShardlynInstanceCreated,
             summary="Create instance (debits the wallet; honours Idempotency-Key)")
def create_instance(body: ShardlynInstanceCreate, caller: Writer, db: DbSession, settings: AppSettings,
                    idem: IdempotencyGuard) -> Response:
    """Pay for, place and address a server and start building it; status is 'provisioning'."""
    data = InstanceCreate(project_id=body.organization(caller.project_id), name=body.name,
                          hostname=body.hostname or body.name, plan=body.plan_ref(), region=body.region_ref(),
                          template=body.template_ref(), billing_cycle=body.billing_cycle, ssh_keys=body.ssh_keys,
                          root_password=body.root_password)
    return idem.run(body, lambda: ShardlynInstanceCreated.of_created(
        build.create_instance(db, settings, caller, data, actor_project=caller.project_id)), status_code=201)


@router.get("/{instance_id}", response_model=ShardlynInstanceRead, summary="Get instance")
def get_instance(instance_id: str, caller: Reader, db: DbSession) -> ShardlynInstanceRead:
    """One instance."""
    return ShardlynInstanceRead.of(instances.get_instance(db, caller, instance_ident(instance_id)))


@router.put("/{instance_id}", response_model=ShardlynInstanceRead, summary="Update instance")
def update_instance(instance_id: str, body: ShardlynInstanceUpdate, caller: Writer,
                    db: DbSession) -> ShardlynInstanceRead:
    """Rename an instance (its hostname stays what the guest was built with)."""
    return ShardlynInstanceRead.of(instances.rename_instance(db, caller, instance_ident(instance_id), body.name))


@router.delete("/{instance_id}", response_model=ShardlynInstanceDeleted, summary="Delete instance")
def delete_instance(instance_id: str, caller: Deleter, db: DbSession) -> ShardlynInstanceDeleted:
    """Delete now: the unused part of the paid cycle is refunded and the server is removed."""
    return ShardlynInstanceDeleted.of(
        deletion.delete_instance(db, caller, instance_ident(instance_id), DeletionMode.IMMEDIATE))
