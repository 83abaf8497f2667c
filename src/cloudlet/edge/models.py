"""The WAF edge: customers' apps fronted by Cloudlet's nginx with ModSecurity and the CRS.

An app belongs to the project of the server its origin address belongs to, and proxies to that address only
while the address stays that server's. Every change to what the edge serves for an app is a numbered version
(a snapshot of the app's edge configuration); `version` is the app's latest, `applied_version` the latest the
edge serves, and `edge_error` why the edge refused a later one. A hostname is unique across all apps; its
certificate and sealed key live here too, so whatever machine runs an edge renders it from the database.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cloudlet.kit import clock
from cloudlet.kit.db import Base, UTCDateTime, enum_column


class CertificateStatus(StrEnum):
    """Where a hostname's certificate stands."""

    PENDING = "pending"
    ISSUED = "issued"
    FAILED = "failed"


class WafApp(Base):
    """One app behind the edge."""

    __tablename__ = "waf_apps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    edge_name: Mapped[str] = mapped_column(String(253), unique=True)  # what the customer CNAMEs hostnames to
    instance_uuid: Mapped[str] = mapped_column(String(36), index=True)  # the origin's server when the app was made
    origin_ip: Mapped[str] = mapped_column(String(64))
    origin_port: Mapped[int] = mapped_column(Integer)
    waf_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    paranoia: Mapped[int] = mapped_column(Integer, default=1)
    excluded_rules: Mapped[list[int]] = mapped_column(JSON, default=list)
    version: Mapped[int] = mapped_column(Integer, default=1)
    applied_version: Mapped[int] = mapped_column(Integer, default=0)
    edge_error: Mapped[str] = mapped_column(Text, default="")
    requests: Mapped[int] = mapped_column(BigInteger, default=0)  # counted by the edge since the app was made
    blocked: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, onupdate=clock.now)


class WafHostname(Base):
    """A hostname an app answers for, and its certificate."""

    __tablename__ = "waf_hostnames"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("waf_apps.id", ondelete="CASCADE"), index=True)
    hostname: Mapped[str] = mapped_column(String(253), unique=True)
    is_primary: Mapped[bool] = mapped_column(Boolean, default=False)
    cert_status: Mapped[CertificateStatus] = mapped_column(enum_column(CertificateStatus),
                                                           default=CertificateStatus.PENDING)
    cert_error: Mapped[str] = mapped_column(Text, default="")
    cert_not_after: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cert_chain: Mapped[str] = mapped_column(Text, default="")  # PEM, the certificate and its intermediates
    cert_key_sealed: Mapped[str] = mapped_column(Text, default="")  # its private key, sealed (kit/secretbox.py)
    cert_action_id: Mapped[int | None] = mapped_column(Integer)  # the latest order's action (one at a time)
    cert_retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # a rate-limited CA asked us to wait
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)


class WafVersion(Base):
    """One numbered version of an app's edge configuration: what it was, and what changed to make it."""

    __tablename__ = "waf_versions"
    __table_args__ = (UniqueConstraint("app_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("waf_apps.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    change: Mapped[str] = mapped_column(String(200))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)


class WafBlock(Base):
    """A request the rule set blocked (the latest ones are kept per app)."""

    __tablename__ = "waf_blocks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("waf_apps.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    client: Mapped[str] = mapped_column(String(64))
    rule_id: Mapped[int | None] = mapped_column(Integer)
    uri: Mapped[str] = mapped_column(String(2000))
    message: Mapped[str] = mapped_column(String(500))


class WafChallenge(Base):
    """An HTTP-01 key authorization of a running order, which the API serves to every edge until it is decided."""

    __tablename__ = "waf_challenges"

    token: Mapped[str] = mapped_column(String(128), primary_key=True)
    hostname_id: Mapped[int] = mapped_column(ForeignKey("waf_hostnames.id", ondelete="CASCADE"), index=True)
    key_authorization: Mapped[str] = mapped_column(String(512))
