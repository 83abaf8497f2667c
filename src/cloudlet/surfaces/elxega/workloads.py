"""Elxega surface: workloads (Cloudlet's virtual servers) at /v1/workloads, in Elxega's success envelope.

    GET /v1/workloads        {"status": "success", "data": {"workloads": [Workload], "total"}}, newest
                             first; filters ?status= (not "deleted": deleted ones are never listed)
                             ?region= (code) and paging ?limit= (1-500; default all) ?offset=
    GET /v1/workloads/{id}   {"status": "success", "data": {"workload": Workload}}

Workload = {"id": "w-<numeric id>", "uuid" (the id every other surface uses), "name", "hostname",
"status" (Cloudlet's words: provisioning, running, stopped, starting, stopping, restarting, suspended,
error, unknown, deleting), "region" (code), "plan" (code), "ip" (the primary IPv4), "ipv6",
"resources": {"cpu", "memory", "storage"} as quantity strings like the reference's resource limits
("1", "1Gi", "25Gi"), "created_at"}.

The reference shows only the list's example; {id} accepts "w-123", "123" or the uuid. Errors use
the envelope {"status": "error", "error": {"code", "message"}}: invalid input is 400, a workload of
another project or a deleted one 404.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from cloudlet.auth.caller import Caller
from cloudlet.instances import service as instances
from cloudlet.instances.models import InstanceStatus
from cloudlet.instances.schemas import InstanceRead
from cloudlet.kit.errors import Invalid, NotFound
from cloudlet.kit.ids import is_number, parse_id
from cloudlet.kit.serial import IsoSeconds
from cloudlet.surfaces.deps import DbSession, requires
from cloudlet.surfaces.params import Offset
from cloudlet.tokens.abilities import Ability

router = APIRouter(prefix="/v1/workloads", tags=["elxega"])

Reader = Annotated[Caller, requires(Ability.INSTANCES_READ)]

PREFIX = "w-"


def _statuses(status: InstanceStatus | None) -> list[InstanceStatus] | None:
    # deleted workloads are never listed, and the service drops a "deleted" filter and lists them all
    if status is InstanceStatus.DELETED:
        raise Invalid("status", "Deleted workloads are not listed.")
    return [status] if status else None


def _quantity(mib: int) -> str:
    return f"{mib // 1024}Gi" if mib % 1024 == 0 else f"{mib}Mi"


def workload_ident(raw: str) -> int | str:
    """The instance a workload id names: "w-123" and "123" by number, anything else as a uuid."""
    number = raw.removeprefix(PREFIX)
    if is_number(number):
        found = parse_id(number)
        if found is None:
            raise NotFound("workload", raw, code="VPS_NOT_FOUND")
        return found
    return raw


class WorkloadResources(BaseModel):
    """What a workload was given, written as Elxega writes resource limits."""

    cpu: str
    memory: str
    storage: str


class Workload(BaseModel):
    """One workload."""

    id: str
    uuid: str
    name: str
    hostname: str
    status: InstanceStatus
    region: str
    plan: str
    ip: str | None
    ipv6: str | None
    resources: WorkloadResources
    created_at: IsoSeconds

    @classmethod
    def of(cls, found: InstanceRead) -> Workload:
        """Render an instance as a workload."""
        resources = WorkloadResources(cpu=str(found.vcpus), memory=_quantity(found.memory_mib),
                                      storage=f"{found.disk_gib}Gi")
        return cls(id=f"{PREFIX}{found.id}", uuid=found.uuid, name=found.name, hostname=found.hostname,
                   status=found.status, region=found.region_code, plan=found.plan_code, ip=found.ipv4,
                   ipv6=found.ipv6, resources=resources, created_at=found.created_at)


class WorkloadList(BaseModel):
    """The list's data."""

    workloads: list[Workload]
    total: int


class WorkloadListEnvelope(BaseModel):
    """GET /v1/workloads."""

    status: Literal["success"] = "success"
    data: WorkloadList


class WorkloadData(BaseModel):
    """One workload's data."""

    workload: Workload


class WorkloadEnvelope(BaseModel):
    """GET /v1/workloads/{id}."""

    status: Literal["success"] = "success"
    data: WorkloadData


@router.get("", response_model=WorkloadListEnvelope, summary="List workloads")
def list_workloads(
    caller: Reader,
    db: DbSession,
    status: Annotated[InstanceStatus | None, Query(description="Only workloads in this status.")] = None,
    region: Annotated[str | None, Query(max_length=100, description="Only this region (code).")] = None,
    limit: Annotated[int | None, Query(ge=1, le=500, description="At most this many; default all.")] = None,
    offset: Offset = 0,
) -> WorkloadListEnvelope:
    """The caller's workloads, newest first."""
    page = instances.list_instances(db, caller, statuses=_statuses(status), region=region,
                                    limit=limit, offset=offset)
    return WorkloadListEnvelope(data=WorkloadList(workloads=[Workload.of(i) for i in page.items], total=page.total))


@router.get("/{workload_id}", response_model=WorkloadEnvelope, summary="Get workload")
def get_workload(workload_id: str, caller: Reader, db: DbSession) -> WorkloadEnvelope:
    """One workload."""
    return WorkloadEnvelope(data=WorkloadData(workload=Workload.of(
        instances.get_instance(db, caller, workload_ident(workload_id)))))
