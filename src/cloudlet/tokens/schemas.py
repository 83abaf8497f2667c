"""What a surface hands the token service, and what it gets back."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class TokenCreate(BaseModel):
    """A request for a new token, in the union of what the references accept."""

    name: str = Field(min_length=1, max_length=200)
    abilities: list[str] = Field(default_factory=list)  # canonical, wildcards or CyberPanel scopes
    expires_at: datetime | None = None
    expires_in: int | None = Field(default=None, gt=0, le=10 * 365 * 86400)  # seconds
    ip_allowlist: list[str] = Field(default_factory=list)
    rate_limit_per_minute: int | None = Field(default=None, ge=1, le=100_000)
    rate_limit_per_hour: int | None = Field(default=None, ge=1, le=10_000_000)


class TokenUpdate(BaseModel):
    """Changes to a token; the secret and abilities never change (mint a new token instead)."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    is_active: bool | None = None
    ip_allowlist: list[str] | None = None
    rate_limit_per_minute: int | None = Field(default=None, ge=1, le=100_000)
    rate_limit_per_hour: int | None = Field(default=None, ge=1, le=10_000_000)


class TokenUsageRead(BaseModel):
    """One line of a token's usage log."""

    endpoint: str
    method: str
    ip_address: str | None
    response_status: int
    response_time_ms: int
    created_at: datetime
