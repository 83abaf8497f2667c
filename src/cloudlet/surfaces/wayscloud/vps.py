"""WaysCloud surface: list, create and read VPS at /v1/vps (the catalogue router owns /plans/, /os-templates, /regions).

    GET  /v1/vps            {"instances": [{"id", "hostname", "display_name", "status", "ipv4_address"}], "total"}
    POST /v1/vps            200 {"id", "hostname", "status": "provisioning", "ipv4", "ipv6", "root_password"}
    GET  /v1/vps/{vps_id}   {"id", "hostname", "display_name", "status", "plan_code", "region", "os_template",
                             "ipv4_address", "ipv6_address", "vcpus", "memory_gb", "disk_gb", "created_at"}

Choices where the reference is silent:
- POST answers 200, not 201. The reference is generated from a FastAPI service's OpenAPI document (its
  errors are FastAPI's {"detail": ...} and its plans path keeps FastAPI's trailing slash); FastAPI
  answers 200 unless a route declares another status, the reference marks no endpoint with another
  one, and its create answers a provisioning receipt (`ipv4`, `ipv6`), not the VPS record itself
  (`ipv4_address`, ...), so clients written from it expect the same 200 as every other call.
- POST honours Idempotency-Key (a retry with the same key and body gets the first answer again) and
  takes `root_password` as an optional extension; without it Cloudlet generates one and returns it
  in `root_password` this once (null when the request set it). `display_name` defaults to the hostname.
- `id` is the instance's uuid, the id every surface shares; a numeric id is accepted in the path too.
- `status` uses WaysCloud's words: provisioning, running, stopped (also a suspended server: powered
  off, disk kept), starting (also restarting), stopping (also a server being deleted). Two values
  fall outside the reference's list because none of its words is true of them: "error" (a build or
  deletion failed) and "unknown" (the server's node does not answer).
- `memory_gb` is a whole number for whole-GiB plans, a decimal otherwise; `os_template` is the
  template id of /v1/vps/os-templates; `ipv6_address` is null in regions without an IPv6 pool.
- Errors are {"detail": message, "code"} (plus "errors" by field on 422): bad input is 422, an empty
  wallet 402, no room on any node 503, another tenant's or a deleted VPS 404.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response

from cloudlet.auth.caller import Caller
from cloudlet.instances import build
from cloudlet.instances import service as instances
from cloudlet.instances.schemas import InstanceCreate
from cloudlet.surfaces.deps import AppSettings, DbSession, requires
from cloudlet.surfaces.idempotency import IdempotencyGuard
from cloudlet.surfaces.wayscloud.vps_schemas import WcVps, WcVpsCreate, WcVpsCreated, WcVpsList, WcVpsSummary
from cloudlet.tokens.abilities import Ability

router = APIRouter(prefix="/v1/vps", tags=["wayscloud"])

Reader = Annotated[Caller, requires(Ability.INSTANCES_READ)]
Writer = Annotated[Caller, requires(Ability.INSTANCES_WRITE)]

@router.get("", response_model=WcVpsList, summary="List VPS")
def list_vps(caller: Reader, db: DbSession) -> WcVpsList:
    """Every VPS of the caller's projects, newest first."""
    page = instances.list_instances(db, caller)
    return WcVpsList(instances=[WcVpsSummary.of(i) for i in page.items], total=page.total)


@router.post("", response_model=WcVpsCreated, summary="Create VPS (debits the wallet; honours Idempotency-Key)")
def create_vps(body: WcVpsCreate, caller: Writer, db: DbSession, settings: AppSettings,
               idem: IdempotencyGuard) -> Response:
    """Pay for, place and address a VPS and start building it; status is 'provisioning'."""
    data = InstanceCreate(name=body.display_name or body.hostname, hostname=body.hostname, plan=body.plan_code,
                          region=body.region, template=body.os_template, ssh_keys=body.ssh_keys,
                          root_password=body.root_password)
    return idem.run(body, lambda: WcVpsCreated.of(
        build.create_instance(db, settings, caller, data, actor_project=caller.project_id)))


@router.get("/{vps_id}", response_model=WcVps, summary="Get VPS")
def get_vps(vps_id: str, caller: Reader, db: DbSession) -> WcVps:
    """One VPS in full."""
    return WcVps.of(instances.get_instance(db, caller, vps_id))
