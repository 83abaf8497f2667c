"""What the networking service takes and hands back: IP pools with their address counts, and allocated
addresses with what a guest needs to configure them."""

from __future__ import annotations

import enum

from pydantic import BaseModel, Field

from cloudlet.catalog.schemas import Code


class IpFamily(enum.StrEnum):
    """IPv4 or IPv6."""

    IPV4 = "ipv4"
    IPV6 = "ipv6"


class Allocation(BaseModel):
    """An address held by an owner (an instance id), with its network's prefix and gateway."""

    id: int  # the allocation's own id (Shield's "IP record" id)
    address: str
    family: IpFamily
    prefix_length: int
    gateway: str | None
    pool_id: int
    owner: str
    rdns: str | None
    reverse_pointer: str  # the PTR record's owner name, e.g. "5.113.0.203.in-addr.arpa"


# ---- IP pools ------------------------------------------------------------------------------------

class IpPoolCreate(BaseModel):
    """A block of addresses in a region. `reserved` lists addresses or CIDRs inside it never to hand out."""

    region: Code
    cidr: str = Field(min_length=3, max_length=64, examples=["203.0.113.0/24"])
    name: str = Field(default="", max_length=200)
    gateway: str | None = Field(default=None, max_length=64)
    reserved: list[str] = Field(default_factory=list, max_length=1000)
    is_active: bool = True


class IpPoolUpdate(BaseModel):
    """Changes to a pool; the CIDR and region cannot change while addresses are allocated."""

    region: Code | None = None
    cidr: str | None = Field(default=None, min_length=3, max_length=64)
    name: str | None = Field(default=None, max_length=200)
    gateway: str | None = Field(default=None, max_length=64)
    reserved: list[str] | None = Field(default=None, max_length=1000)
    is_active: bool | None = None


class IpPoolRead(BaseModel):
    """A pool and its address counts: usable = size less network/broadcast; available = usable
    less gateway, reserved and allocated."""

    id: int
    region: str
    name: str
    cidr: str
    version: int
    gateway: str | None
    reserved: list[str]
    is_active: bool
    usable: int
    reserved_count: int
    allocated: int
    available: int


# ---- a catalogue file ----------------------------------------------------------------------------

class PoolEntry(IpPoolCreate):
    """An IP pool in a catalogue file (matched by its CIDR)."""

