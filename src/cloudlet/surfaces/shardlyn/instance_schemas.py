"""Shardlyn's shapes of an instance: ids as strings, timestamps in seconds with Z, lists under a key."""

from __future__ import annotations

from pydantic import BaseModel, Field

from cloudlet.instances.models import InstanceStatus
from cloudlet.instances.schemas import CreatedInstance, CurrentAction, DeletionRead, InstanceRead
from cloudlet.kit.ids import id_or_key
from cloudlet.kit.serial import IsoSeconds
from cloudlet.surfaces.shardlyn.organization_schemas import chosen_organization


def _ref(value: int | str) -> int | str:
    # Shardlyn writes ids as strings, so "3" is the id 3; any other string is a code
    return id_or_key(value)


def instance_ident(raw: str) -> int | str:
    """An instance id from a path (uuid or number); a number past the id range names nothing."""
    return id_or_key(raw)


class ShardlynInstanceCreate(BaseModel):
    """POST /v1/instances."""

    name: str = Field(min_length=1, max_length=200)
    hostname: str | None = Field(default=None, max_length=253, description="Default: the name.")
    plan: int | str = Field(description="A plan id or code (GET /v1/billing/plans).")
    region: int | str | None = Field(default=None, description="A region id or code; default: the first "
                                                                "available region that offers the plan.")
    template: int | str = Field(description="An OS template id or code.")
    ssh_keys: list[str] = Field(default_factory=list, max_length=50, description="OpenSSH public keys.")
    root_password: str | None = Field(default=None, description="Optional; generated and returned once if absent.")
    billing_cycle: str = Field(default="monthly", max_length=32, description='"monthly", "6months", "yearly", ...')
    organization_id: int | str | None = Field(default=None, description="Default: the caller's organization.")

    def organization(self, default: int) -> int:
        """The organization (project) the instance goes into."""
        return chosen_organization(self.organization_id, default)

    def plan_ref(self) -> int | str:
        """The plan by id or code."""
        return _ref(self.plan)

    def region_ref(self) -> int | str | None:
        """The region by id or code, or None for the default."""
        return None if self.region is None else _ref(self.region)

    def template_ref(self) -> int | str:
        """The OS template by id or code."""
        return _ref(self.template)


class ShardlynInstanceUpdate(BaseModel):
    """PUT /v1/instances/{id}: the display name is what can change."""

    name: str = Field(min_length=1, max_length=200)


class InstanceResources(BaseModel):
    """What an instance was given, in the units of a node's capacity."""

    vcpu: int
    memory_mib: int
    disk_gib: int


class ShardlynCurrentAction(BaseModel):
    """The action holding an instance (a Cloudlet extension): poll it until the instance is unlocked."""

    id: str
    command: str
    progress: int  # 0-100

    @classmethod
    def of(cls, found: CurrentAction | None) -> ShardlynCurrentAction | None:
        """Render the action holding an instance, if one does."""
        return cls(id=str(found.id), command=found.command, progress=found.progress) if found is not None else None


class ShardlynInstanceRead(BaseModel):
    """An instance."""

    id: str
    name: str
    hostname: str
    status: InstanceStatus
    status_reason: str
    organization_id: str
    plan: str
    region: str
    template: str | None
    os_name: str
    resources: InstanceResources
    ipv4: str | None
    ipv6: str | None
    billing_cycle: str
    price_cents: int | None
    currency: str | None
    billed_till: IsoSeconds | None
    locked: bool  # an action holds the instance: allowed_actions is empty until it ends
    action: ShardlynCurrentAction | None  # the action holding it while locked, else null
    allowed_actions: list[str]  # what the current state allows: boot, shutdown, ..., delete
    created_at: IsoSeconds
    updated_at: IsoSeconds

    @classmethod
    def of(cls, found: InstanceRead) -> ShardlynInstanceRead:
        """Render an instance."""
        return cls(id=found.uuid, name=found.name, hostname=found.hostname, status=found.status,
                   status_reason=found.status_reason, organization_id=str(found.project_id), plan=found.plan_code,
                   region=found.region_code, template=found.template_code, os_name=found.os_name,
                   resources=InstanceResources(vcpu=found.vcpus, memory_mib=found.memory_mib,
                                               disk_gib=found.disk_gib),
                   ipv4=found.ipv4, ipv6=found.ipv6, billing_cycle=found.billing_cycle, price_cents=found.price_cents,
                   currency=found.currency, billed_till=found.billed_till, locked=found.locked,
                   action=ShardlynCurrentAction.of(found.action),
                   allowed_actions=[a.value for a in found.allowed_actions], created_at=found.created_at,
                   updated_at=found.updated_at)


class ShardlynInstanceCreated(ShardlynInstanceRead):
    """A new instance, what its first cycle cost, and the root password when Cloudlet chose it (shown once)."""

    charged_cents: int
    root_password: str | None

    @classmethod
    def of_created(cls, created: CreatedInstance) -> ShardlynInstanceCreated:
        """Render a new instance."""
        return cls(**ShardlynInstanceRead.of(created.instance).model_dump(), charged_cents=created.charged_cents,
                   root_password=created.root_password)


class ShardlynInstanceList(BaseModel):
    """GET /v1/instances."""

    instances: list[ShardlynInstanceRead]
    total: int


class ShardlynInstanceDeleted(BaseModel):
    """DELETE /v1/instances/{id}: the instance is being removed and the unused time was refunded."""

    id: str
    status: InstanceStatus  # "deleting" until the worker has removed it; then GET answers 404
    refund_cents: int
    currency: str | None

    @classmethod
    def of(cls, found: DeletionRead) -> ShardlynInstanceDeleted:
        """Render an immediate deletion."""
        return cls(id=found.instance.uuid, status=found.instance.status, refund_cents=found.refund_cents,
                   currency=found.currency)
