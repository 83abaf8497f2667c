"""Primary surface: reinstall, upgrade and password reset of an instance (Evorxa's endpoints).

    GET  /api/instances/{id}/reinstall-options  the OS template groups the instance's plan fits (as
                                                /api/catalog/os-templates/{packageId})
    POST /api/instances/{id}/reinstall          {os_template_id, os_name}: status back to "provisioning";
                                                the disk is rebuilt from the image with the same address,
                                                hostname, keys and root password
    POST /api/instances/{id}/upgrade            {package_id, reboot}: the prorated difference is debited
                                                (402 when the wallet cannot pay it, 422 for a cheaper plan or
                                                a smaller disk); the disk grows at once, vCPUs and memory at
                                                the next boot, or now when reboot is true
    POST /api/instances/{id}/reset-password     optional {reboot}: a new root password, shown once; the
                                                image has no guest agent, so it applies at the next boot
                                                (now when reboot is true), as the answer says

Each answers at once with the instance and the action that carries it out; 409 while another action holds
the instance or its state does not allow it, 403 while it is suspended, 404 for another project's.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, Field

from cloudlet.auth.caller import Caller
from cloudlet.instances import rebuild
from cloudlet.kit.ids import Id
from cloudlet.surfaces.deps import AppSettings, DbSession, requires
from cloudlet.surfaces.primary.catalog_schemas import OsGroupRead
from cloudlet.surfaces.primary.instance_schemas import PrimaryActionRead, PrimaryInstanceRead
from cloudlet.tokens.abilities import Ability

router = APIRouter(prefix="/api", tags=["primary"])

Reader = Annotated[Caller, requires(Ability.INSTANCES_READ)]
Writer = Annotated[Caller, requires(Ability.INSTANCES_WRITE)]


class ReinstallBody(BaseModel):
    """Which OS template to rebuild with (from reinstall-options) and its display label."""

    os_template_id: Id
    os_name: str = Field(default="", max_length=200)


class UpgradeBody(BaseModel):
    """The plan to move to, and whether to restart now so the new vCPUs and memory apply at once."""

    package_id: Id
    reboot: bool


class PasswordResetBody(BaseModel):
    """Whether to restart now so the new password applies at once (a Cloudlet extension)."""

    reboot: bool = False


class PrimaryRebuildRead(PrimaryInstanceRead):
    """The instance and the action that carries the change out."""

    action: PrimaryActionRead


class PrimaryUpgradeRead(PrimaryRebuildRead):
    """An upgrade: what it cost and when the new size applies ("now" or "next_boot")."""

    charged_cents: int
    currency: str
    applied: str
    message: str


class PrimaryPasswordResetRead(PrimaryRebuildRead):
    """A password reset: the new password (shown once), and when the guest gets it."""

    root_password: str
    applied: str
    guest_agent: bool
    message: str


@router.get("/instances/{instance_id}/reinstall-options", response_model=list[OsGroupRead],
            summary="OS template groups the instance can be reinstalled with")
def reinstall_options(instance_id: str, caller: Reader, db: DbSession) -> list[OsGroupRead]:
    """The templates that fit the instance's plan, grouped by OS family."""
    return [OsGroupRead.of(group) for group in rebuild.reinstall_options(db, caller, instance_id)]


@router.post("/instances/{instance_id}/reinstall", response_model=PrimaryRebuildRead, summary="Reinstall the OS")
def reinstall(instance_id: str, body: ReinstallBody, caller: Writer, db: DbSession) -> PrimaryRebuildRead:
    """Rebuild the disk from the template's image; status moves to provisioning."""
    found = rebuild.request_reinstall(db, caller, instance_id, body.os_template_id, body.os_name)
    return PrimaryRebuildRead(**PrimaryInstanceRead.of(found.instance).model_dump(exclude={"action"}),
                              action=PrimaryActionRead.of(found.action))


@router.post("/instances/{instance_id}/upgrade", response_model=PrimaryUpgradeRead,
             summary="Upgrade to a bigger plan (prorated)")
def upgrade(instance_id: str, body: UpgradeBody, caller: Writer, db: DbSession,
            settings: AppSettings) -> PrimaryUpgradeRead:
    """Debit the prorated difference and resize; reboot to apply vCPUs and memory at once."""
    found = rebuild.request_upgrade(db, settings, caller, instance_id, body.package_id, body.reboot)
    return PrimaryUpgradeRead(**PrimaryInstanceRead.of(found.instance).model_dump(exclude={"action"}),
                              action=PrimaryActionRead.of(found.action), charged_cents=found.charged_cents,
                              currency=found.currency, applied=found.applied.value, message=found.message)


@router.post("/instances/{instance_id}/reset-password", response_model=PrimaryPasswordResetRead,
             summary="Reset the root password (returned once)")
def reset_password(instance_id: str, caller: Writer, db: DbSession, settings: AppSettings,
                   body: PasswordResetBody | None = None) -> PrimaryPasswordResetRead:
    """A new root password, shown in this answer only."""
    found = rebuild.request_password_reset(db, settings, caller, instance_id, reboot=body.reboot if body else False)
    return PrimaryPasswordResetRead(**PrimaryInstanceRead.of(found.instance).model_dump(exclude={"action"}),
                                    action=PrimaryActionRead.of(found.action), root_password=found.root_password,
                                    applied=found.applied.value, guest_agent=found.guest_agent,
                                    message=found.message)
