"""WaysCloud errors. The reference gives no error shape; its API is FastAPI's, so {"detail": ...}."""

from __future__ import annotations

from fastapi.responses import JSONResponse

from cloudlet.surfaces.errors import Problem


def render(problem: Problem) -> JSONResponse:
    """The WaysCloud error body: a detail message, and the field errors on 422."""
    body: dict[str, object] = {"detail": problem.message, "code": problem.code}
    if problem.field_errors:
        body["errors"] = problem.field_errors
    return JSONResponse(body, status_code=problem.status)
