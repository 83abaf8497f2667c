"""What a surface hands the token service, and what it gets back."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, Field, field_validator


def _as_utc(value: datetime | None) -> datetime | None:
    # A timestamp without a zone is read as UTC, the way every reference writes its times.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class TokenCreate(BaseModel):
    """A request for a new token, in the union of what the references accept."""

    name: str = Field(min_length=1, max_length=200)
    abilities: list[str] = Field(default_factory=list)  # canonical, wildcards or CyberPanel scopes
    expires_at: datetime | None = None
    expires_in: int | None = Field(default=None, gt=0, le=10 * 365 * 86400)  # seconds
    ip_allowlist: list[str] = Field(default_factory=list, max_length=100)
    rate_limit_per_minute: int | None = Field(default=None, ge=1, le=100_000)
    rate_limit_per_hour: int | None = Field(default=None, ge=1, le=10_000_000)

    _utc = field_validator("expires_at")(_as_utc)


class TokenUpdate(BaseModel):
    """Changes to a token; the secret and abilities never change (mint a new token instead).

    Only the fields a request sets are applied; `expires_at: null` removes the expiry.
    """

    name: str | None = Field(default=None, min_length=1, max_length=200)
    is_active: bool | None = None
    ip_allowlist: list[str] | None = Field(default=None, max_length=100)
    expires_at: datetime | None = None
    rate_limit_per_minute: int | None = Field(default=None, ge=1, le=100_000)
    rate_limit_per_hour: int | None = Field(default=None, ge=1, le=10_000_000)

    _utc = field_validator("expires_at")(_as_utc)


class TokenUsageRead(BaseModel):
    """One line of a token's usage log."""

    endpoint: str
    method: str
    ip_address: str | None
    response_status: int
    response_time_ms: int
    created_at: datetime
