"""CyberPanel shapes of VPS instances: list rows, details, the create order and answer, deployments, deletions."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_core import PydanticCustomError

from cloudlet.instances.models import ActionStatus, InstanceStatus
from cloudlet.instances.schemas import ActionRead, CreatedInstance, DeletionRead, InstanceCreate, InstanceRead
from cloudlet.kit import money
from cloudlet.kit.ids import Id, id_or_key
from cloudlet.kit.serial import IsoSeconds

VMID_OFFSET = 100  # a vmid is 100 + the instance id: hypervisor ids never leave the drivers
ESTIMATED_DEPLOY_SECONDS = 180  # the reference's figure; Cloudlet keeps no estimate of its own
SSH_PORT, SSH_USER = 22, "root"
DEPLOYING = "deploying"


def vmid(instance_id: int) -> int:
    """CyberPanel's `vmid` of an instance: 100 + its id (not a hypervisor id, which never leaves the drivers)."""
    return VMID_OFFSET + instance_id


def cp_status(status: InstanceStatus) -> str:
    """An instance status in CyberPanel's words: provisioning is "deploying", the rest as they are."""
    return DEPLOYING if status is InstanceStatus.PROVISIONING else status.value


def usd(cents: int) -> str:
    """A USD amount as the reference prints prices ("6.00")."""
    return money.format_amount(cents, "USD")


def id_or_code(value: str | int) -> int | str:
    """A catalogue reference as CyberPanel sends it: an id when it is a number, a code otherwise."""
    return id_or_key(str(value).strip())

class CpStatusFilter(StrEnum):
    """The statuses GET /api/v1/vps filters by ("provisioning" is accepted as another name of "deploying")."""

    DEPLOYING = "deploying"
    PROVISIONING = "provisioning"
    RUNNING = "running"
    STOPPED = "stopped"
    SUSPENDED = "suspended"
    ERROR = "error"
    DELETING = "deleting"

    def to_status(self) -> InstanceStatus:
        """The instance status this filter selects."""
        return InstanceStatus.PROVISIONING if self is CpStatusFilter.DEPLOYING else InstanceStatus(self.value)


# --- reading -------------------------------------------------------------------------------------


class CpVps(BaseModel):
    """A VPS as GET /api/v1/vps lists it."""

    id: int
    vmid: int
    name: str
    status: str
    ip_address: str | None
    is_suspended: bool
    created_at: IsoSeconds

    @classmethod
    def of(cls, found: InstanceRead) -> CpVps:
        """Render an instance."""
        return cls(id=found.id, vmid=vmid(found.id), name=found.name, status=cp_status(found.status),
                   ip_address=found.ipv4, is_suspended=found.status is InstanceStatus.SUSPENDED,
                   created_at=found.created_at)


class CpPagination(BaseModel):
    """Where a page sits in the whole list."""

    total: int
    limit: int
    offset: int
    has_more: bool


class CpVpsPage(BaseModel):
    """GET /api/v1/vps: a page of instances."""

    instances: list[CpVps]
    pagination: CpPagination


class CpVpsPlan(BaseModel):
    """The plan of a VPS, with its monthly USD price."""

    id: int
    name: str
    cpu_cores: int
    ram_mb: int
    disk_gb: int
    bandwidth_gb: int
    price: str

    @classmethod
    def of(cls, found: InstanceRead) -> CpVpsPlan:
        """The instance's plan as it runs now."""
        return cls(id=found.plan_id, name=found.plan_name, cpu_cores=found.vcpus, ram_mb=found.memory_mib,
                   disk_gb=found.disk_gib, bandwidth_gb=found.bandwidth_gb, price=usd(found.monthly_price_cents))


class CpVpsLocation(BaseModel):
    """Where a VPS runs."""

    code: str
    name: str


class CpVpsServer(BaseModel):
    """The node a VPS runs on, by its name."""

    hostname: str | None


class CpVpsBilling(BaseModel):
    """How a VPS is billed."""

    hourly_rate: str
    billing_start: IsoSeconds
    last_billed: IsoSeconds | None


class CpVpsDetail(CpVps):
    """GET /api/v1/vps/{id}."""

    updated_at: IsoSeconds
    plan: CpVpsPlan
    location: CpVpsLocation
    server: CpVpsServer
    billing: CpVpsBilling

    @classmethod
    def of_detail(cls, found: InstanceRead) -> CpVpsDetail:
        """Render an instance with its plan, location, node and billing."""
        # the service gives the subscription's start, not the current period's; until it does, the first
        # debit (at the start) is the last one known here
        started = found.subscription_started_at
        return cls(
            **CpVps.of(found).model_dump(), updated_at=found.updated_at,
            plan=CpVpsPlan.of(found),
            location=CpVpsLocation(code=found.region_code, name=found.region_name),
            server=CpVpsServer(hostname=found.node_name),
            billing=CpVpsBilling(hourly_rate=found.hourly_price, billing_start=started or found.created_at,
                                 last_billed=started))


class CpSummary(BaseModel):
    """GET /api/v1/vps/summary."""

    total_instances: int
    running: int
    stopped: int
    suspended: int
    total_monthly_cost: str
    locations: dict[str, int]


# --- creating ------------------------------------------------------------------------------------


def _required(value: object) -> object:
    # CyberPanel counts a blank required field as missing (MISSING_FIELDS), not as a bad value
    if value is None or (isinstance(value, str) and not value.strip()):
        raise PydanticCustomError("missing", "Field required")
    return value.strip() if isinstance(value, str) else value


def _optional(value: str | None) -> str | None:
    if value is None:
        return None
    return value.strip() or None


class CpVpsCreate(BaseModel):
    """POST /api/v1/vps/create, as the reference lists it."""

    hostname: str = Field(max_length=253, description="FQDN hostname, e.g. my-server.example.com")
    plan_id: Id = Field(description="Plan ID from /vps/plans")
    location_code: str = Field(max_length=50, description="Location code from /vps/locations")
    template_id: str | int = Field(description="Template ID from /vps/templates (its code is accepted too)")
    root_password: str = Field(description="8-72 characters, letters AND numbers")
    ssh_key: str | None = Field(default=None, max_length=16_000, description="One SSH public key for root")
    webhook_url: str | None = Field(default=None, max_length=4096,
                                    description="URL to notify when deployment completes or fails")
    webhook_secret: str | None = Field(default=None, max_length=1000,
                                       description="Secret for the X-Webhook-Signature HMAC")

    _blank_is_missing = field_validator("hostname", "location_code", "template_id", "root_password",
                                        mode="before")(_required)
    _blank_is_absent = field_validator("ssh_key", "webhook_url", "webhook_secret")(_optional)

    def template(self) -> int | str:
        """The template by id when the value is a number, by code otherwise."""
        return id_or_code(self.template_id)

    def to_instance(self) -> InstanceCreate:
        """The same order in the instances service's words (the hostname is the name)."""
        return InstanceCreate(name=self.hostname[:200], hostname=self.hostname, plan=self.plan_id,
                              region=self.location_code, template=self.template(),
                              ssh_keys=[self.ssh_key] if self.ssh_key else [], root_password=self.root_password,
                              webhook_url=self.webhook_url, webhook_secret=self.webhook_secret)


class CpCreatedPlan(BaseModel):
    """The plan of a new VPS."""

    id: int
    name: str
    price: str


class CpVpsCreated(BaseModel):
    """The data of the create answer, exactly the reference's."""

    vps_id: int
    name: str
    status: str
    ip_address: str | None
    plan: CpCreatedPlan
    location: str
    template: str
    deployment_url: str
    estimated_time_seconds: int
    webhook_configured: bool

    @classmethod
    def of(cls, created: CreatedInstance) -> CpVpsCreated:
        """Render a new instance."""
        found = created.instance
        return cls(vps_id=found.id, name=found.name, status=cp_status(found.status), ip_address=found.ipv4,
                   plan=CpCreatedPlan(id=found.plan_id, name=found.plan_name, price=usd(found.monthly_price_cents)),
                   location=found.region_code, template=str(found.template_id),
                   deployment_url=f"/api/v1/vps/{found.id}/deployment",
                   estimated_time_seconds=ESTIMATED_DEPLOY_SECONDS, webhook_configured=found.webhook_configured)


CREATED_MESSAGE = "VPS deployment started. Use the deployment endpoint to check progress."


class CpVpsCreatedEnvelope(BaseModel):
    """The whole create answer (kept whole so an Idempotency-Key replays it byte for byte)."""

    success: Literal[True] = True
    data: CpVpsCreated
    message: str = CREATED_MESSAGE


# --- deployment ----------------------------------------------------------------------------------


class CpTask(BaseModel):
    """One deployment task."""

    name: str
    status: str
    order: int


class CpAccessInfo(BaseModel):
    """How to reach a deployed VPS."""

    ip_address: str | None
    ssh_port: int = SSH_PORT
    ssh_user: str = SSH_USER


DEPLOYMENT_STATES: dict[ActionStatus, str] = {
    ActionStatus.RUNNING: "in_progress",
    ActionStatus.SUCCESS: "completed",
    ActionStatus.ERROR: "failed",
}
DEPLOYED_MESSAGE = "VPS deployment completed successfully"
FAILED_MESSAGE = "VPS deployment failed"


class CpDeployment(BaseModel):
    """GET /api/v1/vps/{id}/deployment: the reference's in-progress fields, for every state."""

    vps_id: int
    deployment_status: str
    vps_status: str
    current_task: str | None
    progress_percent: int
    tasks: list[CpTask]
    tasks_completed: int
    tasks_total: int
    started_at: IsoSeconds
    is_ready: bool


class CpDeploymentDone(CpDeployment):
    """A completed deployment: when it finished and how to reach the server."""

    completed_at: IsoSeconds
    access_info: CpAccessInfo


class CpDeploymentFailed(CpDeployment):
    """A failed deployment: when, which task, and why."""

    failed_at: IsoSeconds
    failed_task: str | None
    error: str


def deployment_of(found: InstanceRead, action: ActionRead) -> CpDeployment:
    """Render the create action of an instance in the shape its state calls for."""
    tasks = [CpTask(name=t.name, status=t.status.value, order=t.order) for t in sorted(action.tasks,
                                                                                       key=lambda t: t.order)]
    base = CpDeployment(vps_id=found.id, deployment_status=DEPLOYMENT_STATES[action.status],
                        vps_status=cp_status(found.status), current_task=action.current_task,
                        progress_percent=action.progress, tasks=tasks, tasks_completed=action.tasks_completed,
                        tasks_total=len(tasks), started_at=action.started_at,
                        is_ready=action.status is ActionStatus.SUCCESS)
    finished = action.finished_at or action.started_at
    if action.status is ActionStatus.SUCCESS:
        return CpDeploymentDone(**base.model_dump(), completed_at=finished,
                                access_info=CpAccessInfo(ip_address=found.ipv4))
    if action.status is ActionStatus.ERROR:
        failed = next((t.name for t in tasks if t.status == "failed"), None)
        return CpDeploymentFailed(**{**base.model_dump(), "current_task": failed}, failed_at=finished,
                                  failed_task=failed, error=action.error or found.status_reason or "unknown error")
    return base


# --- deleting ------------------------------------------------------------------------------------


class CpVpsDeleted(BaseModel):
    """POST /api/v1/vps/{id}/delete: what was deleted."""

    deleted: bool
    vps_id: int
    name: str
    vmid: int

    @classmethod
    def of(cls, found: DeletionRead) -> CpVpsDeleted:
        """Render a deletion."""
        return cls(deleted=True, vps_id=found.instance.id, name=found.instance.name, vmid=vmid(found.instance.id))
