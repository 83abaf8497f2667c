"""What the instances service takes and gives back, in no surface's dialect."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from cloudlet.backups.schemas import BackupRead, SnapshotRead
from cloudlet.drivers.base import GuestPath, GuestPathKind
from cloudlet.instances.models import ActionStatus, InstanceStatus, TaskStatus

CREATE_TASKS = ("validate_resources", "allocate_ip", "create_vm", "configure_hardware", "apply_cloud_init",
                "start_vm", "configure_network", "wait_for_guest_agent", "verify_connectivity", "finalize")
DELETE_TASKS = ("stop_vm", "destroy_vm", "release_ip", "release_capacity", "finalize")
SUSPEND_TASKS = ("stop_vm", "finalize")
REACTIVATE_TASKS = ("start_vm", "wait_for_guest_agent", "finalize")


class Command(StrEnum):
    """What an action does."""

    CREATE = "create"
    DELETE = "delete"
    BOOT = "boot"
    SHUTDOWN = "shutdown"
    RESTART = "restart"
    POWEROFF = "poweroff"
    REINSTALL = "reinstall"
    UPGRADE = "upgrade"
    RESET_PASSWORD = "reset_password"
    SNAPSHOT = "snapshot"
    RESTORE = "restore"
    BACKUP = "backup"
    DISCARD = "discard"  # delete a snapshot or a backup (the action's params say which)
    SUSPEND = "suspend"
    REACTIVATE = "reactivate"


class Allowed(StrEnum):
    """What a customer may ask of an instance; each representation lists those its state allows."""

    BOOT = "boot"
    SHUTDOWN = "shutdown"
    RESTART = "restart"
    POWEROFF = "poweroff"
    REINSTALL = "reinstall"
    UPGRADE = "upgrade"
    RESET_PASSWORD = "reset_password"
    CONSOLE = "console"
    SNAPSHOT = "snapshot"
    BACKUP = "backup"
    DELETE = "delete"
    CANCEL_DELETION = "cancel_deletion"
    REACTIVATE = "reactivate"


class DeletionMode(StrEnum):
    """Delete now with a prorated refund, or cancel the renewal and delete at billed_till."""

    IMMEDIATE = "immediate"
    END_OF_CYCLE = "end_of_cycle"


class InstanceCreate(BaseModel):
    """A new server; plan, region and template by id or code (each surface names them its way)."""

    project_id: int | None = None
    name: str = Field(min_length=1, max_length=200)
    hostname: str = Field(min_length=1, max_length=253)
    plan: int | str
    region: int | str | None = None  # default: the first available region that offers the plan
    template: int | str
    os_name: str = Field(default="", max_length=200)
    billing_cycle: str = Field(default="monthly", max_length=32)
    category: str | None = None  # when given, must be the plan's category
    ssh_key_ids: list[int] = Field(default_factory=list, max_length=50)
    ssh_keys: list[str] = Field(default_factory=list, max_length=50)  # inline OpenSSH public keys
    root_password: str | None = None  # generated when absent, and returned once
    webhook_url: str | None = None
    webhook_secret: str | None = None


class TaskRead(BaseModel):
    """One task of an action."""

    model_config = ConfigDict(from_attributes=True)

    name: str
    order: int
    status: TaskStatus
    detail: str
    started_at: datetime | None
    finished_at: datetime | None


class ActionRead(BaseModel):
    """An action with its progress and ordered tasks."""

    id: int
    command: str
    status: ActionStatus
    progress: int
    current_task: str | None
    error: str | None
    started_at: datetime
    finished_at: datetime | None
    tasks: list[TaskRead]

    @property
    def tasks_completed(self) -> int:
        """How many tasks are done."""
        return sum(1 for task in self.tasks if task.status is TaskStatus.COMPLETED)


class CurrentAction(BaseModel):
    """The action holding an instance now: what it does and how far it got."""

    id: int
    command: str
    progress: int
    current_task: str | None


class InstanceRead(BaseModel):
    """An instance with what every surface renders of it."""

    id: int
    uuid: str
    project_id: int
    name: str
    hostname: str
    status: InstanceStatus
    status_reason: str
    plan_id: int
    plan_code: str
    plan_name: str
    category: str
    monthly_price_cents: int  # the plan's list price in USD cents
    hourly_price: str  # USD, as the catalogue prints it
    bandwidth_gb: int
    region_code: str
    region_name: str
    template_id: int | None
    template_code: str | None
    os_name: str
    billing_cycle: str
    vcpus: int
    memory_mib: int
    disk_gib: int
    ipv4: str | None
    ipv6: str | None
    node_name: str | None
    locked: bool
    action: CurrentAction | None = None  # the action holding it while locked
    allowed_actions: list[Allowed]
    webhook_configured: bool
    billed_till: datetime | None
    subscription_started_at: datetime | None
    price_cents: int | None  # what one cycle costs, in the wallet's currency
    currency: str | None
    delete_at: datetime | None
    created_at: datetime
    updated_at: datetime
    provisioned_at: datetime | None
    deleted_at: datetime | None


class CreatedInstance(BaseModel):
    """A new instance, its provisioning action, and the root password when Cloudlet chose it (shown once)."""

    instance: InstanceRead
    action: ActionRead
    charged_cents: int
    root_password: str | None = None


class ReactivationRead(BaseModel):
    """A reactivation: the instance, the boot action, and what the new cycle cost."""

    instance: InstanceRead
    action: ActionRead
    charged_cents: int


class DeletionRead(BaseModel):
    """What a deletion did: the instance after it, the refund, and when the server goes."""

    instance: InstanceRead
    mode: DeletionMode
    refund_cents: int
    currency: str | None
    delete_at: datetime | None


class RemoteState(BaseModel):
    """What the node says of a guest right now."""

    state: str  # a GuestState value, or "unknown" when the node does not answer
    cpu_percent: float | None = None
    memory_total_kib: int | None = None
    memory_free_kib: int | None = None


class ConsoleLog(BaseModel):
    """A guest's serial console output: since it last started, or across its boots (the history)."""

    instance_uuid: str
    text: str
    truncated: bool


class InstanceSummary(BaseModel):
    """Counts of a caller's instances (CyberPanel's dashboard summary)."""

    total: int
    by_status: dict[str, int]
    by_region: dict[str, int]
    monthly_cost_cents: int  # USD list prices of the servers not deleted


class PlacedGuest(NamedTuple):
    """A running instance's guest and the node it runs on (what the metrics sampler reads)."""

    node_id: int
    node_name: str
    node_uri: str
    instance_id: int
    guest_name: str


class BandwidthTarget(NamedTuple):
    """A server with a guest on a node, its plan's network cap and monthly transfer, and whether it is throttled for
    having used that transfer up (what the transfer quota round reads)."""

    node_id: int
    node_uri: str
    instance_id: int
    uuid: str
    name: str
    project_id: int
    guest_name: str
    plan_mbit: int | None
    plan_transfer_gb: int
    throttled_until: datetime | None


class SeriesIdentity(BaseModel):
    """Who an instance is in the operators' /metrics labels."""

    uuid: str
    name: str
    project_id: int
    node: str


class InstancePage(BaseModel):
    """A page of instances and how many match in all."""

    items: list[InstanceRead]
    total: int


class SshKeyCreate(BaseModel):
    """A public key to keep for later builds."""

    name: str = Field(min_length=1, max_length=200)
    public_key: str = Field(min_length=1, max_length=16_000)


class SshKeyRead(BaseModel):
    """A kept public key."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    project_id: int
    name: str
    public_key: str
    fingerprint: str
    is_default: bool = False
    created_at: datetime


class SnapshotStarted(BaseModel):
    """A snapshot and the action opened on it (create, restore or delete)."""

    instance_id: int
    instance_uuid: str
    snapshot: SnapshotRead
    action: ActionRead


class BackupStarted(BaseModel):
    """A backup and the action opened on it (create, restore or delete)."""

    backup: BackupRead
    action: ActionRead


# --- files of a running server (files.py) --------------------------------------------------------


class FileEntry(BaseModel):
    """One file, directory or link of a server."""

    name: str
    path: str
    type: GuestPathKind
    size: int
    mode: str  # permission bits in octal, e.g. "0644"
    modified_at: str  # ISO 8601 with Z

    @classmethod
    def of(cls, path: str, found: GuestPath) -> FileEntry:
        """Render what the guest reported at path."""
        return cls(name=found.name, path=path, type=found.kind, size=found.size, mode=f"{found.mode:04o}",
                   modified_at=found.modified.isoformat(timespec="seconds").replace("+00:00", "Z"))


class FileListing(BaseModel):
    """A directory's entries by name; truncated when it held more than the listing limit."""

    path: str
    entries: list[FileEntry]
    truncated: bool


class FileContent(BaseModel):
    """A file's content: text as is when it is UTF-8, else base64."""

    path: str
    content: str
    encoding: str  # "utf-8" or "base64"
    size: int
