"""Health reports."""

from __future__ import annotations

from pydantic import BaseModel


class CheckRead(BaseModel):
    """One dependency's state."""

    status: str  # "ok", "error" or "disabled"
    latency_ms: float | None = None
    error: str | None = None


class HealthReport(BaseModel):
    """The whole picture: ready when every enabled check is ok."""

    status: str  # "ok" or "degraded"
    version: str
    uptime_seconds: int
    checks: dict[str, CheckRead]

    @property
    def ready(self) -> bool:
        """Whether every enabled dependency answered."""
        return all(c.status != "error" for c in self.checks.values())
