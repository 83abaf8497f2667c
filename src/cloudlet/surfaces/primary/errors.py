"""Primary errors: {"message": ..., "errors": {field: [messages]}}; 422 for invalid input."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from cloudlet.surfaces.errors import Problem


def render(problem: Problem) -> JSONResponse:
    """The primary surface's error body."""
    body: dict[str, Any] = {"message": problem.message, "code": problem.code}
    if problem.status == 422 or problem.field_errors:
        body["errors"] = problem.field_errors
    if problem.reason:
        body["status"] = problem.reason
    return JSONResponse(body, status_code=problem.status)
