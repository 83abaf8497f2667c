"""What the WAF's callers send and get: apps, hostnames with their certificates, the rule set, versions, blocks."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, Field

from cloudlet.edge.models import CertificateStatus

RuleId = Annotated[int, Field(ge=1, le=999_999_999)]


class EdgeState(StrEnum):
    """Whether the edge serves an app's latest version."""

    ACTIVE = "active"
    PENDING = "pending"
    ERROR = "error"


class WafAppCreate(BaseModel):
    """A new app: its label, its origin (an address of one of the caller's servers) and its primary hostname."""

    name: str = Field(min_length=1, max_length=100, description="Application label.")
    origin_ip: str = Field(max_length=64, description="Origin (instance) IP: an address of one of your servers.")
    origin_port: int | None = Field(None, ge=1, le=65535,
                                    description="Defaults to 80; 443 proxies to the origin over TLS.")
    hostname: str = Field(max_length=253, description="Primary hostname (CNAME this to the app's edge name).")


class HostnameCreate(BaseModel):
    """A hostname to add to an app."""

    hostname: str = Field(max_length=253, description="Hostname to add. SSL will be issued.")


class FirewallUpdate(BaseModel):
    """The rule set's state; paranoia and exclusions are extensions."""

    enabled: bool = Field(description="Enable or disable the rule set.")
    paranoia_level: int | None = Field(None, ge=1, le=4, description="The CRS paranoia level, 1 (default) to 4.")
    excluded_rules: list[RuleId] | None = Field(None, max_length=200,
                                             description="CRS rule ids this app runs without (false positives).")


class RollbackRequest(BaseModel):
    """Which version to go back to."""

    version: int = Field(ge=1, le=2**31 - 1, description="The version whose configuration the app takes again.")


class HostnameRead(BaseModel):
    """A hostname of an app and its certificate."""

    id: int
    hostname: str
    primary: bool
    ssl_status: CertificateStatus
    ssl_error: str | None
    ssl_expires_at: datetime | None
    created_at: datetime


class FirewallRead(BaseModel):
    """The app's rule set: ModSecurity with the OWASP CRS."""

    enabled: bool
    paranoia_level: int
    excluded_rules: list[int]


class WafAppRead(BaseModel):
    """An app: where it sends traffic, what it answers for, its rule set, and whether the edge serves it yet."""

    id: int
    name: str
    edge_name: str
    origin_ip: str
    origin_port: int
    hostnames: list[HostnameRead]
    firewall: FirewallRead
    version: int
    status: EdgeState
    error: str | None
    requests: int
    blocked: int
    created_at: datetime
    updated_at: datetime


class VersionRead(BaseModel):
    """One version of an app's edge configuration."""

    number: int
    change: str
    config: dict[str, Any]
    current: bool
    created_at: datetime


class BlockRead(BaseModel):
    """A request the rule set blocked."""

    at: datetime
    client: str
    rule_id: int | None
    uri: str
    message: str
