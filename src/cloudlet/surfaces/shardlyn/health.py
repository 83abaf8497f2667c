"""Shardlyn's health endpoints: /health, /health/live, /health/ready, /health/detailed, /ready."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from cloudlet.health import service as health
from cloudlet.surfaces.deps import AppRuntime

router = APIRouter(tags=["shardlyn", "health"])


@router.get("/health", summary="Basic health check (liveness)")
def basic() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


@router.get("/health/live", summary="Liveness probe")
def live() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


def _ready(runtime: AppRuntime) -> JSONResponse:
    report = health.report(runtime.db, runtime.limiter, redis_enabled=bool(runtime.settings.redis_url))
    body: dict[str, Any] = {"status": "ready" if report.ready else "not_ready",
                            "checks": {k: v.status for k, v in report.checks.items()}}
    return JSONResponse(body, status_code=200 if report.ready else 503)


@router.get("/health/ready", summary="Readiness probe")
def ready(runtime: AppRuntime) -> JSONResponse:
    """Ready when the database (and Redis, when configured) answers; 503 otherwise."""
    return _ready(runtime)


@router.get("/ready", summary="Readiness probe (alias)")
def ready_alias(runtime: AppRuntime) -> JSONResponse:
    """Same as /health/ready."""
    return _ready(runtime)


@router.get("/health/detailed", summary="Detailed health report")
def detailed(runtime: AppRuntime) -> JSONResponse:
    """Version, uptime and each dependency's state and latency; 503 when not ready."""
    report = health.report(runtime.db, runtime.limiter, redis_enabled=bool(runtime.settings.redis_url))
    return JSONResponse(report.model_dump(), status_code=200 if report.ready else 503)
