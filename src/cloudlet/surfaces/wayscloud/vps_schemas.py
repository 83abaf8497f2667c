"""WaysCloud's shapes of a VPS: the list entry, the full record, the create request and its answer."""

from __future__ import annotations

from pydantic import BaseModel, Field

from cloudlet.instances.models import InstanceStatus
from cloudlet.instances.schemas import CreatedInstance, InstanceRead
from cloudlet.kit.serial import IsoSeconds

# WaysCloud's words are running, stopped, starting, stopping and provisioning. A suspended server is
# powered off with its disk kept, which is what WaysCloud calls stopped; a restarting one is on its way
# back to running, so it is starting; a server being deleted is being powered off and removed, so it is
# stopping until it is gone (then 404). No word of the reference is true of a server whose build or
# deletion failed, or whose node does not answer, so those stay "error" and "unknown".
STATUS_WORDS: dict[InstanceStatus, str] = {
    InstanceStatus.PROVISIONING: "provisioning",
    InstanceStatus.RUNNING: "running",
    InstanceStatus.STOPPED: "stopped",
    InstanceStatus.STARTING: "starting",
    InstanceStatus.STOPPING: "stopping",
    InstanceStatus.RESTARTING: "starting",
    InstanceStatus.SUSPENDED: "stopped",
    InstanceStatus.DELETING: "stopping",
    InstanceStatus.ERROR: "error",
    InstanceStatus.UNKNOWN: "unknown",
    InstanceStatus.DELETED: "stopped",  # never shown: deleted servers answer 404
}


def status_word(status: InstanceStatus) -> str:
    """An instance status in WaysCloud's words."""
    return STATUS_WORDS[status]


def _gb(mib: int) -> int | float:
    return mib // 1024 if mib % 1024 == 0 else round(mib / 1024, 2)


class WcVpsCreate(BaseModel):
    """POST /v1/vps as the reference lists it; root_password is Cloudlet's optional extension."""

    hostname: str = Field(min_length=1, max_length=253, description="Server hostname (FQDN recommended).")
    plan_code: str = Field(min_length=1, max_length=100, description="A plan code from /v1/vps/plans.")
    region: str = Field(min_length=1, max_length=100, description="A region id from /v1/vps/regions.")
    os_template: str = Field(min_length=1, max_length=100, description="A template id from /v1/vps/os-templates.")
    display_name: str | None = Field(default=None, max_length=200, description="Default: the hostname.")
    ssh_keys: list[str] = Field(default_factory=list, max_length=50, description="OpenSSH public keys.")
    root_password: str | None = Field(default=None, description="Optional; generated and returned once if absent.")


class WcVpsCreated(BaseModel):
    """The answer to POST /v1/vps; root_password is the one Cloudlet chose (null when the request set one)."""

    id: str
    hostname: str
    status: str
    ipv4: str | None
    ipv6: str | None
    root_password: str | None

    @classmethod
    def of(cls, created: CreatedInstance) -> WcVpsCreated:
        """Render a new instance."""
        found = created.instance
        return cls(id=found.uuid, hostname=found.hostname, status=status_word(found.status), ipv4=found.ipv4,
                   ipv6=found.ipv6, root_password=created.root_password)


class WcVpsSummary(BaseModel):
    """One entry of GET /v1/vps."""

    id: str
    hostname: str
    display_name: str
    status: str
    ipv4_address: str | None

    @classmethod
    def of(cls, found: InstanceRead) -> WcVpsSummary:
        """Render an instance for the list."""
        return cls(id=found.uuid, hostname=found.hostname, display_name=found.name, status=status_word(found.status),
                   ipv4_address=found.ipv4)


class WcVpsList(BaseModel):
    """GET /v1/vps."""

    instances: list[WcVpsSummary]
    total: int


class WcVps(BaseModel):
    """GET /v1/vps/{vps_id}: the full record (memory_gb is fractional only for plans under whole GiB)."""

    id: str
    hostname: str
    display_name: str
    status: str
    plan_code: str
    region: str
    os_template: str | None  # null once the template the server was built from was removed
    ipv4_address: str | None
    ipv6_address: str | None
    vcpus: int
    memory_gb: int | float
    disk_gb: int
    created_at: IsoSeconds

    @classmethod
    def of(cls, found: InstanceRead) -> WcVps:
        """Render an instance in full."""
        return cls(id=found.uuid, hostname=found.hostname, display_name=found.name, status=status_word(found.status),
                   plan_code=found.plan_code, region=found.region_code, os_template=found.template_code,
                   ipv4_address=found.ipv4, ipv6_address=found.ipv6, vcpus=found.vcpus,
                   memory_gb=_gb(found.memory_mib), disk_gb=found.disk_gib, created_at=found.created_at)
