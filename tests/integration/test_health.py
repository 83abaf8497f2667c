"""Health endpoints answer, and errors come back in the format of the surface that owns the path."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api


def test_liveness_and_readiness_check_the_database(api: Api) -> None:
    assert api.get("/health").json() == {"status": "ok"}
    assert api.get("/health/live").status_code == 200
    ready = api.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"] == "ok"
    assert api.get("/ready").json() == ready.json()
    detailed = api.get("/health/detailed").json()
    assert detailed["checks"]["database"]["status"] == "ok"
    assert detailed["checks"]["redis"]["status"] == "disabled"


def test_unknown_paths_answer_in_each_surfaces_error_format(api: Api) -> None:
    assert api.get("/api/nothing-here").json()["message"] == "No such endpoint."
    cyberpanel = api.get("/api/v1/nothing-here").json()
    assert cyberpanel["success"] is False and cyberpanel["error_code"] == "NOT_FOUND"
    assert api.get("/v1/nothing-here").json() == {"error": "No such endpoint."}
    assert api.get("/v1/vps/x/y/z").json()["detail"] == "No such endpoint."
    assert api.get("/v1/workloads/x/y").json()["status"] == "error"


class TestWithRedisDown:
    """Readiness reports a configured Redis that does not answer (nothing listens on port 1)."""

    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"redis_url": "redis://127.0.0.1:1/0"}

    def test_readiness_fails_while_liveness_holds(self, api: Api) -> None:
        assert api.get("/health/live").status_code == 200
        ready = api.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json() == {"status": "not_ready", "checks": {"database": "ok", "redis": "error"}}
        assert api.get("/health/detailed").json()["checks"]["redis"]["status"] == "error"
