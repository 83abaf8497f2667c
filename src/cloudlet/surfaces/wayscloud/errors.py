"""WaysCloud errors. The reference gives no error shape; its API is FastAPI's, so {"detail": ...}.

As in any FastAPI service, `detail` is a message on most errors and, on a 422, the list of
{loc, msg, type} that the OpenAPI document declares for it (HTTPValidationError), so a client
generated from that document can read every 422 the surface sends.
"""

from __future__ import annotations

from fastapi.responses import JSONResponse

from cloudlet.surfaces.errors import Problem


def _validation_detail(problem: Problem) -> list[dict[str, object]]:
    if problem.details:
        return [{"loc": list(item.loc), "msg": item.message, "type": item.kind} for item in problem.details]
    # A rule that names no field (an Idempotency-Key reused, say): the request as a whole broke it.
    return [{"loc": ["body"], "msg": problem.message, "type": problem.code}]


def render(problem: Problem) -> JSONResponse:
    """The WaysCloud error body: a detail message (a list of errors on 422), a code, the field errors."""
    detail: object = _validation_detail(problem) if problem.status == 422 else problem.message
    body: dict[str, object] = {"detail": detail, "code": problem.code}
    if problem.status == 422:
        body["message"] = problem.message  # the one-line summary the list replaces
    if problem.field_errors:
        body["errors"] = problem.field_errors
    return JSONResponse(body, status_code=problem.status)
