"""CyberPanel surface: VPS instances at /api/v1/vps (list, summary, details, create, deployment, delete).

Where the reference is silent, Cloudlet chooses:
- `id` is the instance's numeric id (its uuid is accepted too); `vmid` is 100 + id, a stable number
  for clients that expect one. It is not the hypervisor's id: those never leave the drivers.
- Status: provisioning is shown as "deploying"; running, stopped, suspended, error and deleting as
  they are. The list's `status` filter takes any of these ("provisioning" too).
- `name` is the instance's name; an instance created here is named after its hostname.
- Create answers 201. `template_id` is a template's id (a string, as /vps/templates lists them, or a
  number) or its code; `template` in the answer is the id. A blank required field counts as missing
  (MISSING_FIELDS). `estimated_time_seconds` is the reference's 180: Cloudlet keeps no estimate.
  An Idempotency-Key replays the first answer, as on the primary surface.
- Deployment: the in-progress fields in every state; a completed one adds `completed_at` and
  `access_info` (and `tasks`, which the reference leaves out there), a failed one adds `failed_at`,
  `failed_task` and `error`, both with a message. A deleted VPS answers 404 VPS_NOT_FOUND here as
  everywhere.
- Delete is immediate: the unused part of the paid cycle is refunded to the wallet, then the
  server is removed in the background (its status is "deleting" until then). It needs vps:delete,
  which vps:write implies.
- billing.last_billed is the subscription's start until the service tells the current period's.
- Traffic and firewall: `plan.bandwidth_gb` is the plan's monthly transfer, the quota Shield counts the
  server's traffic against (warned, then throttled: /api/shield/ips/{id}/bandwidth shows the month so far);
  the reference gives a VPS no firewall or traffic fields, so Shield's rules and figures are on the primary
  surface only.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from cloudlet.auth.caller import Caller
from cloudlet.instances import build, deletion
from cloudlet.instances import service as instances
from cloudlet.instances.models import InstanceStatus
from cloudlet.instances.schemas import DeletionMode
from cloudlet.surfaces.cyberpanel.errors import envelope
from cloudlet.surfaces.cyberpanel.vps_schemas import (
    DEPLOYED_MESSAGE,
    FAILED_MESSAGE,
    CpDeploymentDone,
    CpDeploymentFailed,
    CpPagination,
    CpStatusFilter,
    CpSummary,
    CpVps,
    CpVpsCreate,
    CpVpsCreated,
    CpVpsCreatedEnvelope,
    CpVpsDeleted,
    CpVpsDetail,
    CpVpsPage,
    deployment_of,
    usd,
)
from cloudlet.surfaces.deps import AppSettings, DbSession, requires
from cloudlet.surfaces.idempotency import IdempotencyGuard
from cloudlet.surfaces.params import Offset
from cloudlet.tokens.abilities import Ability

router = APIRouter(prefix="/api/v1/vps", tags=["cyberpanel"])

VpsReader = Annotated[Caller, requires(Ability.INSTANCES_READ)]
VpsWriter = Annotated[Caller, requires(Ability.INSTANCES_WRITE)]
VpsDeleter = Annotated[Caller, requires(Ability.INSTANCES_DELETE)]


@router.get("", summary="List VPS Instances")
def list_vps(caller: VpsReader, db: DbSession,
             status: Annotated[CpStatusFilter | None, Query(description="Only VPS in this status.")] = None,
             location: Annotated[str | None, Query(max_length=50, description="Only this location code.")] = None,
             limit: Annotated[int, Query(ge=1, le=100)] = 50,
             offset: Offset = 0) -> dict[str, Any]:
    """A page of the caller's VPS, newest first."""
    page = instances.list_instances(db, caller, statuses=[status.to_status()] if status else None, region=location,
                                    limit=limit, offset=offset)
    data = CpVpsPage(instances=[CpVps.of(i) for i in page.items],
                     pagination=CpPagination(total=page.total, limit=limit, offset=offset,
                                             has_more=offset + len(page.items) < page.total))
    return envelope(data.model_dump(mode="json"))


@router.get("/summary", summary="Get VPS Dashboard Summary")
def vps_summary(caller: VpsReader, db: DbSession) -> dict[str, Any]:
    """How many VPS, by status and location, and what they cost a month (USD list prices)."""
    found = instances.summary(db, caller)
    counts = found.by_status
    data = CpSummary(total_instances=found.total, running=counts.get(InstanceStatus.RUNNING.value, 0),
                     stopped=counts.get(InstanceStatus.STOPPED.value, 0),
                     suspended=counts.get(InstanceStatus.SUSPENDED.value, 0),
                     total_monthly_cost=usd(found.monthly_cost_cents), locations=found.by_region)
    return envelope(data.model_dump(mode="json"))


@router.post("/create", status_code=201, summary="Create VPS (debits the wallet; honours Idempotency-Key)")
def create_vps(body: CpVpsCreate, caller: VpsWriter, db: DbSession, settings: AppSettings,
               idem: IdempotencyGuard) -> Response:
    """Pay for, place and address a server and start deploying it."""
    return idem.run(body, lambda: CpVpsCreatedEnvelope(data=CpVpsCreated.of(
        build.create_instance(db, settings, caller, body.to_instance(), actor_project=caller.project_id))),
        status_code=201)


@router.get("/{vps_id}", summary="Get VPS Details")
def get_vps(vps_id: str, caller: VpsReader, db: DbSession) -> dict[str, Any]:
    """One VPS with its plan, location, node and billing."""
    return envelope(CpVpsDetail.of_detail(instances.get_instance(db, caller, vps_id)).model_dump(mode="json"))


@router.get("/{vps_id}/deployment", summary="Get Deployment Status")
def deployment(vps_id: str, caller: VpsReader, db: DbSession) -> dict[str, Any]:
    """How the VPS's deployment goes, task by task."""
    data = deployment_of(*instances.deployment(db, caller, vps_id))
    message = {CpDeploymentDone: DEPLOYED_MESSAGE, CpDeploymentFailed: FAILED_MESSAGE}.get(type(data))
    return envelope(data.model_dump(mode="json"), message)


@router.post("/{vps_id}/delete", summary="Delete VPS (immediately; the unused part is refunded)")
def delete_vps(vps_id: str, caller: VpsDeleter, db: DbSession) -> dict[str, Any]:
    """Delete the VPS now and refund the rest of its paid cycle."""
    data = CpVpsDeleted.of(deletion.delete_instance(db, caller, vps_id, DeletionMode.IMMEDIATE))
    return envelope(data.model_dump(mode="json"), f'VPS "{data.name}" deleted successfully')
