"""What the networking service hands back: an allocated address with what a guest needs to configure it."""

from __future__ import annotations

import enum

from pydantic import BaseModel


class IpFamily(enum.StrEnum):
    """IPv4 or IPv6."""

    IPV4 = "ipv4"
    IPV6 = "ipv6"


class Allocation(BaseModel):
    """An address held by an owner (an instance id), with its network's prefix and gateway."""

    address: str
    family: IpFamily
    prefix_length: int
    gateway: str | None
    pool_id: int
    owner: str
    rdns: str | None
    reverse_pointer: str  # the PTR record's owner name, e.g. "5.113.0.203.in-addr.arpa"
