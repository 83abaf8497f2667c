"""Primary surface shapes of instances and SSH keys (Evorxa's "Instances" and "SSH Keys" sections)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from cloudlet.instances.schemas import (
    ActionRead,
    CreatedInstance,
    CurrentAction,
    DeletionMode,
    DeletionRead,
    InstanceRead,
    RemoteState,
)
from cloudlet.kit.ids import Id
from cloudlet.kit.serial import IsoMillis


def _gib(mib: int) -> int | float:
    return mib // 1024 if mib % 1024 == 0 else round(mib / 1024, 2)


class PrimaryInstanceCreate(BaseModel):
    """POST /api/instances, as the reference lists it (root_password is Cloudlet's optional extension)."""

    name: str = Field(min_length=1, max_length=200)
    hostname: str = Field(min_length=1, max_length=253)
    project_id: Id
    package_id: Id
    category: str
    os_template_id: Id
    os_name: str = Field(max_length=200)
    billing_cycle: Literal["monthly", "6months", "yearly"]
    ssh_key_ids: list[Id] = Field(default_factory=list, max_length=50)
    root_password: str | None = Field(default=None, description="Optional; generated and returned once if absent.")


class IpAddressRead(BaseModel):
    """One address of an instance."""

    address: str
    family: Literal["ipv4", "ipv6"]
    primary: bool


class PrimaryCurrentAction(BaseModel):
    """The action holding an instance (a Cloudlet extension): poll it until the instance is unlocked."""

    id: int
    command: str
    progress: int  # 0-100

    @classmethod
    def holding(cls, found: CurrentAction | None) -> PrimaryCurrentAction | None:
        """The primary rendering of the action holding an instance, if one does."""
        return cls(id=found.id, command=found.command, progress=found.progress) if found is not None else None


class PrimaryInstanceRead(BaseModel):
    """An instance as GET /api/instances lists it."""

    id: str
    name: str
    hostname: str
    plan: str
    status: str
    vf_state: str
    main_ip: str | None
    vcpu: int
    ram: int | float  # GiB
    storage: int  # GiB
    billed_till: IsoMillis | None
    ip_addresses: list[IpAddressRead]
    project_id: int
    region: str
    category: str
    os_name: str
    os_template_id: int | None
    billing_cycle: str
    locked: bool  # an action holds the instance: allowed_actions is empty until it ends
    action: PrimaryCurrentAction | None  # the action holding it while locked, else null
    allowed_actions: list[str]  # what the current state allows: boot, shutdown, ..., delete, cancel_deletion
    deletion_scheduled_at: IsoMillis | None
    created_at: IsoMillis

    @classmethod
    def of(cls, found: InstanceRead) -> PrimaryInstanceRead:
        """The primary rendering of an instance."""
        addresses = [IpAddressRead(address=found.ipv4, family="ipv4", primary=True)] if found.ipv4 else []
        if found.ipv6:
            addresses.append(IpAddressRead(address=found.ipv6, family="ipv6", primary=False))
        return cls(id=found.uuid, name=found.name, hostname=found.hostname, plan=found.plan_code,
                   status=found.status.value, vf_state=vf_state(found), main_ip=found.ipv4, vcpu=found.vcpus,
                   ram=_gib(found.memory_mib), storage=found.disk_gib, billed_till=found.billed_till,
                   ip_addresses=addresses, project_id=found.project_id, region=found.region_code,
                   category=found.category, os_name=found.os_name, os_template_id=found.template_id,
                   billing_cycle=found.billing_cycle, locked=found.locked,
                   action=PrimaryCurrentAction.holding(found.action),
                   allowed_actions=[a.value for a in found.allowed_actions], deletion_scheduled_at=found.delete_at,
                   created_at=found.created_at)


def vf_state(found: InstanceRead) -> str:
    """The build state the reference calls vf_state: queued while provisioning, complete once built."""
    return {"provisioning": "provisioning", "error": "failed", "deleting": "deleting",
            "deleted": "deleted"}.get(found.status.value, "complete")


class MemoryRead(BaseModel):
    """Guest memory in KiB, as the reference shows it."""

    memtotal: int | None
    memfree: int | None


class RemoteStateRead(BaseModel):
    """vf_remote_state: what the hypervisor says right now."""

    state: str
    cpu: float | None
    memory: MemoryRead

    @classmethod
    def of(cls, found: RemoteState) -> RemoteStateRead:
        """The primary rendering of a live state."""
        return cls(state=found.state, cpu=found.cpu_percent,
                   memory=MemoryRead(memtotal=found.memory_total_kib, memfree=found.memory_free_kib))


class PrimaryInstanceDetail(PrimaryInstanceRead):
    """GET /api/instances/{id}: the instance with its live runtime state."""

    vf_remote_state: RemoteStateRead
    status_reason: str


class PrimaryInstanceCreated(PrimaryInstanceRead):
    """POST /api/instances: the new record, what was charged, and the root password when Cloudlet chose it."""

    charged_cents: int
    root_password: str | None
    action_id: int

    @classmethod
    def of_created(cls, created: CreatedInstance) -> PrimaryInstanceCreated:
        """The primary rendering of a new instance."""
        base = PrimaryInstanceRead.of(created.instance).model_dump()
        return cls(**base, charged_cents=created.charged_cents, root_password=created.root_password,
                   action_id=created.action.id)


class PrimaryDeletion(BaseModel):
    """DELETE /api/instances/{id}: body of the request."""

    mode: DeletionMode


class PrimaryDeletionRead(BaseModel):
    """What a deletion did: the refund in cents, and when the server goes."""

    id: str
    status: str
    mode: DeletionMode
    refund_cents: int
    currency: str | None
    delete_at: IsoMillis | None

    @classmethod
    def of(cls, found: DeletionRead) -> PrimaryDeletionRead:
        """The primary rendering of a deletion."""
        return cls(id=found.instance.uuid, status=found.instance.status.value, mode=found.mode,
                   refund_cents=found.refund_cents, currency=found.currency, delete_at=found.delete_at)


class PrimarySshKeyRead(BaseModel):
    """A kept SSH key."""

    id: int
    name: str
    public_key: str
    fingerprint: str
    project_id: int
    is_default: bool = Field(default=False, description="What a new server gets when its order names no key.")
    created_at: IsoMillis


class TaskRead(BaseModel):
    """One task of an action."""

    name: str
    order: int
    status: str
    detail: str
    started_at: IsoMillis | None
    finished_at: IsoMillis | None


class PrimaryActionRead(PrimaryCurrentAction):
    """An action on an instance, with its progress and its ordered tasks (a Cloudlet extension)."""

    status: str
    current_task: str | None
    error: str | None
    started_at: IsoMillis
    finished_at: IsoMillis | None
    tasks: list[TaskRead]

    @classmethod
    def of(cls, found: ActionRead) -> PrimaryActionRead:
        """The primary rendering of an action."""
        return cls(id=found.id, command=found.command, status=found.status.value, progress=found.progress,
                   current_task=found.current_task, error=found.error, started_at=found.started_at,
                   finished_at=found.finished_at,
                   tasks=[TaskRead(name=t.name, order=t.order, status=t.status.value, detail=t.detail,
                                   started_at=t.started_at, finished_at=t.finished_at) for t in found.tasks])
