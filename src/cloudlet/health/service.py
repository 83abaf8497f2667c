"""Checks of the database and, when configured, Redis."""

from __future__ import annotations

import time

from sqlalchemy import text

from cloudlet import __version__
from cloudlet.health.schemas import CheckRead, HealthReport
from cloudlet.kit.db import Database
from cloudlet.kit.ratelimit import RateLimiter

STARTED = time.monotonic()


def _timed(check: object) -> CheckRead:
    started = time.perf_counter()
    try:
        ok = check() if callable(check) else False
    except Exception as exc:  # a dependency's failure is the report, not an error of ours
        return CheckRead(status="error", error=f"{type(exc).__name__}: {exc}"[:300])
    latency = round((time.perf_counter() - started) * 1000, 2)
    return CheckRead(status="ok" if ok else "error", latency_ms=latency, error=None if ok else "no answer")


def report(db: Database, limiter: RateLimiter, *, redis_enabled: bool) -> HealthReport:
    """Check each dependency now."""

    def database() -> bool:
        with db.engine.connect() as conn:
            return conn.execute(text("SELECT 1")).scalar() == 1

    checks = {"database": _timed(database)}
    checks["redis"] = _timed(limiter.healthy) if redis_enabled else CheckRead(status="disabled")
    status = "ok" if all(c.status != "error" for c in checks.values()) else "degraded"
    return HealthReport(status=status, version=__version__, uptime_seconds=int(time.monotonic() - STARTED),
                        checks=checks)
