"""Shardlyn errors: {"error": "descriptive error message"}; invalid input is a 400."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from cloudlet.surfaces.errors import Problem


def render(problem: Problem) -> JSONResponse:
    """The Shardlyn error body."""
    status = 400 if problem.status == 422 else problem.status
    body: dict[str, Any] = {"error": problem.message}
    return JSONResponse(body, status_code=status)
