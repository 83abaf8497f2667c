"""Elxega errors, mirroring its success envelope: {"status": "error", "error": {"code", "message"}}."""

from __future__ import annotations

from fastapi.responses import JSONResponse

from cloudlet.surfaces.errors import Problem


def render(problem: Problem) -> JSONResponse:
    """The Elxega error envelope."""
    status = 400 if problem.status == 422 else problem.status
    error: dict[str, object] = {"code": problem.code, "message": problem.message}
    if problem.field_errors:
        error["fields"] = problem.field_errors
    return JSONResponse({"status": "error", "error": error}, status_code=status)
