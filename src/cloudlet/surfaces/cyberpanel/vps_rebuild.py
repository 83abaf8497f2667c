"""CyberPanel surface: reinstall, upgrade and password reset of a VPS (Cloudlet extensions).

The CyberPanel reference has none of these; Cloudlet adds them in the style of its start, stop and
snapshot restore, over the same services as the primary surface (instances/rebuild.py):

    GET  /api/v1/vps/{id}/reinstall-options  {"templates": [...]}: the OS templates the VPS's plan can be
                                             rebuilt with, in GET /api/v1/vps/templates' shape
    POST /api/v1/vps/{id}/reinstall          {template_id}: the disk is rebuilt from the template's image with
                                             the same address, hostname, SSH key and root password
    POST /api/v1/vps/{id}/upgrade            {plan_id, reboot}: the prorated difference is debited from the
                                             wallet; the disk grows at once, vCPUs and memory at the next boot,
                                             or now when reboot is true
    POST /api/v1/vps/{id}/reset-password     optional {root_password, reboot}: a new root password, shown once
                                             in the answer; the images run no guest agent, so it applies at the
                                             next boot, or now when reboot is true, as the message says

Choices where no reference speaks:
- The fields are named as POST /api/v1/vps/create names them (`template_id`, `plan_id`, `root_password`);
  `template` and `plan` are accepted as other names. A template is its id (a string, as /vps/templates
  lists it, or a number) or its code; a plan is its id (or its code).
- `root_password` follows /vps/create's rules and codes (400 PASSWORD_TOO_SHORT, PASSWORD_TOO_LONG,
  PASSWORD_WEAK); without one, Cloudlet generates a password. Either way the answer shows it once.
- Like start and stop, each POST answers once its action has ended ("VPS reinstalled successfully",
  "VPS upgraded successfully", "Root password reset successfully"), or after the server's
  instance_power_wait_seconds with "VPS is being reinstalled" (upgraded; "Root password is being reset")
  and the transitional status ("deploying" while a reinstall rebuilds the disk, "restarting" while a
  reboot applies an upgrade or a password); GET /api/v1/vps/{id} tells the rest. The upgrade's and the
  password's message go on to say when the change reaches the guest, and `applied` says it as "now" or
  "next_boot".
- A failed action is a 500 REINSTALL_FAILED, UPGRADE_FAILED or PASSWORD_RESET_FAILED with the reason. A
  failed password reset still carries `data.root_password`: the VPS keeps that password, and a later
  boot or reinstall gives it to the guest.
- `charged` is what the upgrade debited, in the wallet's currency (`currency`), printed as the reference
  prints prices ("6.00"); the plan's `price` is its monthly USD list price, as GET /api/v1/vps/{id} shows it.

Refusals: 404 VPS_NOT_FOUND for a VPS that is not the caller's, 409 INSTANCE_BUSY while another action
holds it, 409 INVALID_STATE when its state does not allow the change, 409 SNAPSHOTS_EXIST for a reinstall
or upgrade while the VPS has snapshots (they live inside the disk that changes), 403 VPS_SUSPENDED; 400
INVALID_TEMPLATE for an unknown template or one the plan is too small for, 400 PLAN_NOT_FOUND for an
unknown plan, 400 DISK_TOO_SMALL for a plan with a smaller disk, and 400 INSUFFICIENT_BALANCE when the
wallet cannot pay the upgrade (CyberPanel answers an unpayable order with a 400, not a 402). Nothing is
changed or charged when a request is refused.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import AliasChoices, BaseModel, Field
from starlette.responses import Response

from cloudlet.auth.caller import Caller
from cloudlet.instances import power, rebuild
from cloudlet.instances.models import ActionStatus
from cloudlet.instances.schemas import ActionRead, InstanceRead
from cloudlet.kit import money
from cloudlet.surfaces.cyberpanel.catalog import CpTemplate
from cloudlet.surfaces.cyberpanel.errors import envelope, render
from cloudlet.surfaces.cyberpanel.vps_power import Wording
from cloudlet.surfaces.cyberpanel.vps_schemas import CpVpsPlan, cp_status, id_or_code, vmid
from cloudlet.surfaces.deps import AppRuntime, DbSession, requires
from cloudlet.surfaces.errors import Problem
from cloudlet.surfaces.settled import SettledAnswer
from cloudlet.tokens.abilities import Ability

router = APIRouter(prefix="/api/v1/vps", tags=["cyberpanel"])

VpsReader = Annotated[Caller, requires(Ability.INSTANCES_READ)]
VpsWriter = Annotated[Caller, requires(Ability.INSTANCES_WRITE)]


# --- requests ------------------------------------------------------------------------------------


class CpReinstall(BaseModel):
    """POST /api/v1/vps/{id}/reinstall."""

    template_id: str | int = Field(validation_alias=AliasChoices("template_id", "template"),
                                   description="Template ID from /vps/{id}/reinstall-options (its code is accepted "
                                               "too); `template` is accepted as the field's name")

    def template(self) -> int | str:
        """The template by id when the value is a number, by code otherwise."""
        return id_or_code(self.template_id)


class CpUpgrade(BaseModel):
    """POST /api/v1/vps/{id}/upgrade."""

    plan_id: int | str = Field(validation_alias=AliasChoices("plan_id", "plan"),
                               description="Plan ID from /vps/plans (its code is accepted too); `plan` is accepted "
                                           "as the field's name")
    reboot: bool = Field(description="Restart now so the new vCPUs and memory apply at once")

    def plan(self) -> int | str:
        """The plan by id when the value is a number, by code otherwise."""
        return id_or_code(self.plan_id)


class CpPasswordResetBody(BaseModel):
    """POST /api/v1/vps/{id}/reset-password (the body is optional)."""

    root_password: str | None = Field(default=None, description="8-72 characters, letters AND numbers; "
                                                                "generated when absent")
    reboot: bool = Field(default=False, description="Restart now so the password applies at once")


# --- answers -------------------------------------------------------------------------------------


class CpVpsChanged(BaseModel):
    """The VPS a reinstall, upgrade or password reset worked on."""

    id: int
    vmid: int
    name: str
    status: str
    ip_address: str | None

    @staticmethod
    def fields(found: InstanceRead) -> dict[str, Any]:
        """The common fields of an instance."""
        return {"id": found.id, "vmid": vmid(found.id), "name": found.name, "status": cp_status(found.status),
                "ip_address": found.ipv4}


class CpReinstalled(CpVpsChanged):
    """A reinstall: the template (its id, as the create answer shows it) and the OS name."""

    template: str
    os_name: str


class CpUpgraded(CpVpsChanged):
    """An upgrade: the new plan, what it cost, and when its size applies."""

    plan: CpVpsPlan
    charged: str
    currency: str
    applied: str


class CpPasswordReset(CpVpsChanged):
    """A password reset: the new password (shown once), and when the guest gets it."""

    root_password: str
    applied: str
    guest_agent: bool


REINSTALLED = Wording("VPS reinstalled successfully", "VPS is being reinstalled", "REINSTALL_FAILED",
                      "Failed to reinstall VPS")
UPGRADED = Wording("VPS upgraded successfully", "VPS is being upgraded", "UPGRADE_FAILED", "Failed to upgrade VPS")
PASSWORD_RESET = Wording("Root password reset successfully", "Root password is being reset", "PASSWORD_RESET_FAILED",
                         "Failed to reset root password")


def _answer(action: ActionRead, data: BaseModel, words: Wording, note: str = "", *,
            data_on_failure: bool = False) -> Response:
    """The success envelope with the message of how the action stands, or its failure (500)."""
    if action.status is ActionStatus.ERROR:
        failed = render(Problem(500, words.failed_code, f"{words.failed}: {action.error}"))
        if not data_on_failure:
            return failed
        body = json.loads(bytes(failed.body))
        return JSONResponse({**body, "data": data.model_dump(mode="json")}, status_code=failed.status_code)
    message = words.done if action.status is ActionStatus.SUCCESS else words.going
    return JSONResponse(envelope(data.model_dump(mode="json"), f"{message}. {note}" if note else message))


def _settled(runtime: AppRuntime, caller: Caller, instance: InstanceRead, action: ActionRead,
             make: Callable[[power.PowerRead], Response]) -> SettledAnswer:
    """Answer once the action has ended (or the wait is over), after the request's transaction has committed."""
    started = power.PowerRead(instance=instance, action=action)
    wait = runtime.settings.instance_power_wait_seconds
    return SettledAnswer(lambda: make(power.settle(runtime.db, caller, started, wait)))


# --- endpoints -----------------------------------------------------------------------------------


@router.get("/{vps_id}/reinstall-options", summary="OS templates the VPS can be reinstalled with (Cloudlet addition)")
def reinstall_options(vps_id: str, caller: VpsReader, db: DbSession) -> dict[str, Any]:
    """The active templates that fit the VPS's plan."""
    groups = rebuild.reinstall_options(db, caller, vps_id)
    return envelope({"templates": [CpTemplate.of(t).model_dump() for group in groups for t in group.templates]})


@router.post("/{vps_id}/reinstall", summary="Reinstall VPS (Cloudlet addition; answers once it runs again)")
def reinstall(vps_id: str, body: CpReinstall, caller: VpsWriter, db: DbSession, runtime: AppRuntime) -> Response:
    """Rebuild the VPS's disk from the template's image, keeping its address, hostname, key and password."""
    found = rebuild.request_reinstall(db, caller, vps_id, body.template())

    def make(now: power.PowerRead) -> Response:
        row = now.instance
        data = CpReinstalled(**CpVpsChanged.fields(row), template=str(row.template_id), os_name=row.os_name)
        return _answer(now.action, data, REINSTALLED)

    return _settled(runtime, caller, found.instance, found.action, make)


@router.post("/{vps_id}/upgrade", summary="Upgrade VPS to a bigger plan (Cloudlet addition; prorated)")
def upgrade(vps_id: str, body: CpUpgrade, caller: VpsWriter, db: DbSession, runtime: AppRuntime) -> Response:
    """Debit the prorated difference and resize the VPS; reboot to apply the vCPUs and memory at once."""
    found = rebuild.request_upgrade(db, runtime.settings, caller, vps_id, body.plan(), body.reboot)

    def make(now: power.PowerRead) -> Response:
        row = now.instance
        data = CpUpgraded(**CpVpsChanged.fields(row), plan=CpVpsPlan.of(row),
                          charged=money.format_amount(found.charged_cents, found.currency), currency=found.currency,
                          applied=found.applied.value)
        return _answer(now.action, data, UPGRADED, found.message)

    return _settled(runtime, caller, found.instance, found.action, make)


@router.post("/{vps_id}/reset-password", summary="Reset the VPS's root password (Cloudlet addition; shown once)")
def reset_password(vps_id: str, caller: VpsWriter, db: DbSession, runtime: AppRuntime,
                   body: CpPasswordResetBody | None = None) -> Response:
    """Set a new root password (the caller's or a generated one), shown in this answer only."""
    wanted = body or CpPasswordResetBody()
    found = rebuild.request_password_reset(db, runtime.settings, caller, vps_id, reboot=wanted.reboot,
                                           root_password=wanted.root_password)

    def make(now: power.PowerRead) -> Response:
        data = CpPasswordReset(**CpVpsChanged.fields(now.instance), root_password=found.root_password,
                               applied=found.applied.value, guest_agent=found.guest_agent)
        return _answer(now.action, data, PASSWORD_RESET, found.message, data_on_failure=True)

    return _settled(runtime, caller, found.instance, found.action, make)
