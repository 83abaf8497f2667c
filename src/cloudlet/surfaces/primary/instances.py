"""Primary surface: instances (Evorxa's "Instances" section) and SSH keys.

Instances of every project the caller belongs to are listed unless `project_id` names one; an
instance of another project answers 404. Creating, deleting and cancelling a deletion take the
project's billing right (owners, or members granted instances:billing).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from cloudlet.auth.caller import Caller
from cloudlet.instances import build, deletion, suspension
from cloudlet.instances import service as instances
from cloudlet.instances.schemas import InstanceCreate, SshKeyCreate
from cloudlet.kit.ids import MAX_ID
from cloudlet.surfaces.deps import AppRuntime, AppSettings, DbSession, requires
from cloudlet.surfaces.idempotency import IdempotencyGuard
from cloudlet.surfaces.params import PathId
from cloudlet.surfaces.primary.instance_schemas import (
    PrimaryActionRead,
    PrimaryDeletion,
    PrimaryDeletionRead,
    PrimaryInstanceCreate,
    PrimaryInstanceCreated,
    PrimaryInstanceDetail,
    PrimaryInstanceRead,
    PrimarySshKeyRead,
    RemoteStateRead,
)
from cloudlet.tokens.abilities import Ability

router = APIRouter(prefix="/api", tags=["primary"])

Reader = Annotated[Caller, requires(Ability.INSTANCES_READ)]
Writer = Annotated[Caller, requires(Ability.INSTANCES_WRITE)]
Deleter = Annotated[Caller, requires(Ability.INSTANCES_DELETE)]


@router.get("/instances", response_model=list[PrimaryInstanceRead], summary="List instances")
def list_instances(caller: Reader, db: DbSession,
                   project_id: Annotated[int | None, Query(ge=1, le=MAX_ID, description="Only this project.")] = None
                   ) -> list[PrimaryInstanceRead]:
    """The caller's instances, newest first."""
    return [PrimaryInstanceRead.of(i) for i in instances.list_instances(db, caller, project_id=project_id).items]


@router.post("/instances", status_code=201, response_model=PrimaryInstanceCreated,
             summary="Create an instance (debits the wallet; honours Idempotency-Key)")
def create_instance(body: PrimaryInstanceCreate, caller: Writer, db: DbSession, settings: AppSettings,
                    idem: IdempotencyGuard) -> Response:
    """Pay for, place and address a server and start building it; status is 'provisioning'."""
    data = InstanceCreate(project_id=body.project_id, name=body.name, hostname=body.hostname, plan=body.package_id,
                          category=body.category, template=body.os_template_id, os_name=body.os_name,
                          billing_cycle=body.billing_cycle, ssh_key_ids=body.ssh_key_ids,
                          root_password=body.root_password)
    return idem.run(body, lambda: PrimaryInstanceCreated.of_created(
        build.create_instance(db, settings, caller, data, actor_project=caller.project_id)), status_code=201)


@router.get("/instances/{instance_id}", response_model=PrimaryInstanceDetail,
            summary="One instance, with its live state from the hypervisor")
def get_instance(instance_id: str, caller: Reader, db: DbSession, runtime: AppRuntime) -> PrimaryInstanceDetail:
    """The instance and vf_remote_state."""
    found = instances.get_instance(db, caller, instance_id)
    live = instances.remote_state(db, runtime.drivers, caller, instance_id)
    return PrimaryInstanceDetail(**PrimaryInstanceRead.of(found).model_dump(), vf_remote_state=RemoteStateRead.of(live),
                                 status_reason=found.status_reason)


@router.delete("/instances/{instance_id}", response_model=PrimaryDeletionRead,
               summary="Delete now (prorated refund) or at the end of the paid cycle")
def delete_instance(instance_id: str, body: PrimaryDeletion, caller: Deleter, db: DbSession) -> PrimaryDeletionRead:
    """`immediate` refunds the unused part and removes the server; `end_of_cycle` cancels the renewal."""
    return PrimaryDeletionRead.of(deletion.delete_instance(db, caller, instance_id, body.mode))


@router.post("/instances/{instance_id}/cancel-deletion", response_model=PrimaryInstanceRead,
             summary="Cancel an end_of_cycle deletion; billing resumes")
def cancel_deletion(instance_id: str, caller: Writer, db: DbSession) -> PrimaryInstanceRead:
    """Undo a scheduled deletion."""
    return PrimaryInstanceRead.of(deletion.cancel_deletion(db, caller, instance_id))


@router.post("/instances/{instance_id}/reactivate", response_model=PrimaryInstanceRead,
             summary="Pay a cycle from now and unsuspend (402 when the wallet cannot pay)")
def reactivate(instance_id: str, caller: Writer, db: DbSession) -> PrimaryInstanceRead:
    """Debits the cycle cost from the wallet, extends billed_till, and boots the suspended instance."""
    return PrimaryInstanceRead.of(suspension.reactivate_instance(db, caller, instance_id).instance)


@router.get("/instances/{instance_id}/actions", response_model=list[PrimaryActionRead],
            summary="The instance's actions (create, delete, ...) with their progress, newest first")
def list_actions(instance_id: str, caller: Reader, db: DbSession) -> list[PrimaryActionRead]:
    """Cloudlet's extension: every change to an instance is an action with ordered tasks."""
    return [PrimaryActionRead.of(a) for a in instances.list_actions(db, caller, instance_id)]


@router.get("/instances/{instance_id}/actions/{action_id}", response_model=PrimaryActionRead,
            summary="One action of the instance")
def get_action(instance_id: str, action_id: PathId, caller: Reader, db: DbSession) -> PrimaryActionRead:
    """An action with its tasks."""
    return PrimaryActionRead.of(instances.get_action(db, caller, instance_id, action_id))


@router.get("/ssh-keys", response_model=list[PrimarySshKeyRead], summary="Your registered SSH keys")
def list_ssh_keys(caller: Reader, db: DbSession,
                  project_id: Annotated[int | None, Query(ge=1, le=MAX_ID, description="Only this project.")] = None
                  ) -> list[PrimarySshKeyRead]:
    """Keys of the caller's projects."""
    return [PrimarySshKeyRead.model_validate(k.model_dump()) for k in instances.list_ssh_keys(db, caller, project_id)]


@router.post("/ssh-keys", status_code=201, response_model=PrimarySshKeyRead, summary="Keep an OpenSSH public key")
def add_ssh_key(body: SshKeyCreate, caller: Writer, db: DbSession,
                project_id: Annotated[int | None, Query(ge=1, le=MAX_ID, description="Keep it in this project.")] = None
                ) -> PrimarySshKeyRead:
    """Check and keep a public key for later builds."""
    found = instances.add_ssh_key(db, caller, body, actor_project=caller.project_id, project_id=project_id)
    return PrimarySshKeyRead.model_validate(found.model_dump())


@router.delete("/ssh-keys/{key_id}", status_code=204, summary="Forget an SSH key")
def delete_ssh_key(key_id: PathId, caller: Writer, db: DbSession) -> Response:
    """Servers built with the key keep it."""
    instances.delete_ssh_key(db, caller, key_id)
    return Response(status_code=204)
