"""API tokens and their usage log."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cloudlet.kit import clock
from cloudlet.kit.db import Base, UTCDateTime

if TYPE_CHECKING:
    from cloudlet.auth.models import User


class ApiToken(Base):
    """A long-lived credential of one user; the secret is kept only as its SHA-256 digest."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(32))  # the visible start of the secret
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    abilities: Mapped[list[str]] = mapped_column(JSON)
    ip_allowlist: Mapped[list[str]] = mapped_column(JSON, default=list)  # CIDRs; empty allows all
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    rate_limit_per_minute: Mapped[int] = mapped_column(Integer)
    rate_limit_per_hour: Mapped[int] = mapped_column(Integer)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_ip: Mapped[str | None] = mapped_column(String(64))
    request_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    # loaded with the token in the same query: authenticating a request then costs one round trip
    user: Mapped[User] = relationship(lazy="joined", viewonly=True)


class TokenUsage(Base):
    """One request made with a token: what, from where, with what result, how fast."""

    __tablename__ = "token_usage"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("api_tokens.id", ondelete="CASCADE"), index=True)
    endpoint: Mapped[str] = mapped_column(String(500))
    method: Mapped[str] = mapped_column(String(10))
    ip_address: Mapped[str | None] = mapped_column(String(64))
    response_status: Mapped[int] = mapped_column(Integer)
    response_time_ms: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, index=True)
