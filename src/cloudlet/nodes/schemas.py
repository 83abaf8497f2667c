"""What the nodes domain takes and gives: node bodies, capacity, inventory, and placement reservations."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cloudlet.drivers.base import FirewallAction, FirewallProtocol
from cloudlet.nodes.models import NodeStatus

REMOTE_SCHEMES = ("qemu+ssh", "qemu+tls")
LOCAL_PATHS = ("/system", "/session")
Ratio = Annotated[float, Field(ge=0.01, le=100)]  # stored with two decimals: a smaller one would be 0


def check_uri(value: str) -> str:
    """A libvirt URI Cloudlet can drive: qemu:///system (local), qemu+ssh://host/system or qemu+tls://host/system."""
    value = value.strip()
    parts = urlsplit(value)
    if parts.scheme == "qemu":
        if parts.netloc or parts.path not in LOCAL_PATHS:
            raise ValueError("a local libvirt URI is qemu:///system (or qemu:///session)")
        return value
    if parts.scheme in REMOTE_SCHEMES:
        if not parts.hostname or parts.path not in LOCAL_PATHS:
            raise ValueError(f"a remote libvirt URI names a host and a path: {parts.scheme}://HOST/system")
        return value
    raise ValueError("the libvirt URI must start with qemu:///, qemu+ssh:// or qemu+tls://")


class Resources(BaseModel):
    """An amount of vCPUs, memory (MiB) and disk (GiB)."""

    model_config = ConfigDict(frozen=True)

    vcpu: int = Field(ge=0, le=1_000_000)
    memory_mib: int = Field(ge=0, le=2_000_000_000)
    disk_gib: int = Field(ge=0, le=2_000_000_000)


class Overcommit(BaseModel):
    """How far each resource may be sold beyond the hardware (4.0 = four vCPUs per core)."""

    model_config = ConfigDict(frozen=True)

    cpu: Ratio
    memory: Ratio
    disk: Ratio


DEFAULT_OVERCOMMIT = Overcommit(cpu=4.0, memory=1.0, disk=1.0)
NOTHING = Resources(vcpu=0, memory_mib=0, disk_gib=0)


class NodeCreate(BaseModel):
    """A new node. region is a catalogue region code (or id); reserved is held back for the host."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    uri: str = Field(min_length=1, max_length=500)
    region: str | int
    capacity: Resources
    overcommit: Overcommit = DEFAULT_OVERCOMMIT
    reserved: Resources = NOTHING

    _uri = field_validator("uri")(check_uri)


class NodeRegister(NodeCreate):
    """A node registering itself with a single-use registration token."""

    registration_token: str = Field(min_length=1, max_length=200)


class NodeUpdate(BaseModel):
    """Changes to a node; only the fields sent are applied."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    uri: str | None = Field(default=None, min_length=1, max_length=500)
    region: str | int | None = None
    capacity: Resources | None = None
    overcommit: Overcommit | None = None
    reserved: Resources | None = None

    @field_validator("uri")
    @classmethod
    def _uri(cls, value: str | None) -> str | None:
        return None if value is None else check_uri(value)


class NodeRead(BaseModel):
    """A node: status is the effective one (unreachable, else cordoned, else ready); allocatable is
    capacity x overcommit - reserved, and free is allocatable - used."""

    id: int
    name: str
    uri: str
    region: str
    region_id: int
    status: NodeStatus
    health: NodeStatus  # ready or unreachable, as the last heartbeat saw it
    cordoned: bool
    status_reason: str
    capacity: Resources
    overcommit: Overcommit
    reserved: Resources
    allocatable: Resources
    used: Resources
    free: Resources
    reservations: int  # open reservations (guests placed here)
    last_heartbeat_at: datetime | None
    inventory_at: datetime | None
    created_at: datetime
    updated_at: datetime


class RegistrationTokenRead(BaseModel):
    """A node registration token, shown in plain text only in this answer."""

    id: int
    token: str
    expires_at: datetime


class RegistrationTokenCreate(BaseModel):
    """How long a registration token lives (default one hour)."""

    model_config = ConfigDict(extra="forbid")

    expires_in_minutes: int = Field(default=60, ge=1, le=7 * 24 * 60)


class SystemInventory(BaseModel):
    """The host's identity and size; fields the control plane cannot see from here are null."""

    hostname: str | None = None
    os: str | None = None
    kernel: str | None = None
    architecture: str | None = None
    cpu_model: str | None = None
    cpu_count: int | None = None
    memory_mib: int | None = None
    hardware_virtualisation: bool
    libvirt_uri: str


class NetworkInterface(BaseModel):
    """One network interface of the host."""

    name: str
    mac_address: str | None = None
    mtu: int | None = None
    state: str | None = None
    addresses: list[str] = Field(default_factory=list)


class DiskInventory(BaseModel):
    """A filesystem guests' disks live on, or a base image in the node's pool."""

    name: str
    kind: str  # "pool" (where overlays live) or "image" (a base image)
    size_bytes: int
    used_bytes: int | None = None
    free_bytes: int | None = None


class GuestInventory(BaseModel):
    """A guest this control plane made on the node."""

    name: str
    state: str
    vcpus: int
    memory_mib: int


class NodeInventory(BaseModel):
    """Everything the last heartbeat or refresh learnt about a node."""

    collected_at: datetime
    system: SystemInventory
    network: list[NetworkInterface] = Field(default_factory=list)
    disks: list[DiskInventory] = Field(default_factory=list)
    guests: list[GuestInventory] = Field(default_factory=list)
    capabilities: dict[str, bool] = Field(default_factory=dict)


class Reservation(BaseModel):
    """Capacity placement set aside on a node for one guest; give it back with release()."""

    model_config = ConfigDict(frozen=True)

    id: int
    node_id: int
    node_name: str
    node_uri: str
    region_id: int
    resources: Resources
    holder: str
    created_at: datetime
    released_at: datetime | None = None


class NodeFirewallRuleCreate(BaseModel):
    """A rule of a node's own inbound firewall: packets to the node from `source` (a CIDR, IPv4 or IPv6; any when
    left out) of `protocol` to `port`..`port_end` (tcp and udp only; any port when left out) are allowed or
    blocked. Rules decide in the order they were added; what none matches passes."""

    model_config = ConfigDict(extra="forbid")

    action: FirewallAction
    protocol: FirewallProtocol = FirewallProtocol.ANY
    source: str | None = Field(default=None, max_length=64, description="A CIDR, IPv4 or IPv6; default: any.")
    port: int | None = Field(default=None, ge=1, le=65535)
    port_end: int | None = Field(default=None, ge=1, le=65535, description="With port: the last of a range.")
    comment: str = Field(default="", max_length=255)


class NodeFirewallRuleRead(BaseModel):
    """A rule of a node's own inbound firewall (source null: any source)."""

    id: int
    action: FirewallAction
    protocol: FirewallProtocol
    source: str | None
    port: int | None
    port_end: int | None
    comment: str
    created_at: datetime
