"""One place where errors become HTTP answers, each in the format of the surface the path belongs to."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from cloudlet.kit.errors import CloudletError, Invalid, RateLimited
from cloudlet.surfaces import security_headers

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class FieldError:
    """One rule one input broke: where (FastAPI's loc, e.g. ("body", "hostname")), what, and its type."""

    loc: tuple[str | int, ...]
    message: str
    kind: str


@dataclass
class Problem:
    """An error, surface-neutral: what went wrong, for which fields, with which headers."""

    status: int
    code: str
    message: str
    field_errors: dict[str, list[str]] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    missing_fields: bool = False  # a request-shape error where required fields were absent
    reason: str | None = None  # e.g. "expired" for a 410
    details: list[FieldError] = field(default_factory=list)  # each broken rule with its location, for 422s

    @property
    def title(self) -> str:
        """The HTTP reason phrase of the status."""
        return HTTPStatus(self.status).phrase


Renderer = Callable[[Problem], JSONResponse]


def _field_name(loc: tuple[object, ...]) -> str:
    # the first part says where the input was (a field may itself be called "path", as a file's is)
    parts = [str(p) for p in (loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc)]
    return ".".join(parts) or "body"


# how an id in a path fails validation: not a number, or a number out of the id bound (kit/ids.py)
_NOT_AN_ID = frozenset({"int_parsing", "int_from_float", "int_type", "greater_than", "greater_than_equal",
                        "less_than", "less_than_equal"})


def _from_validation(exc: RequestValidationError) -> Problem:
    found = exc.errors()
    if found and all(tuple(err.get("loc", ()))[:1] == ("path",) and err.get("type") in _NOT_AN_ID for err in found):
        # a path segment that cannot be an id (out of bound, not ASCII digits) names nothing: not found
        return Problem(404, "NOT_FOUND", "No such object.")
    errors: dict[str, list[str]] = {}
    details: list[FieldError] = []
    missing = False
    for err in exc.errors():
        loc = tuple(p if isinstance(p, int) else str(p) for p in err.get("loc", ()))
        name = _field_name(loc)
        if err.get("type") == "missing":
            missing = True
            text = f"The {name} field is required."
        elif err.get("type") == "json_invalid":
            text = "The request body is not valid JSON."
        else:
            text = f"The {name} field is invalid: {err.get('msg', 'invalid value')}."
        errors.setdefault(name, []).append(text)
        details.append(FieldError(loc, text, str(err.get("type", "value_error"))))
    first = next(iter(errors.values()))[0] if errors else "The request is invalid."
    extra = sum(len(v) for v in errors.values()) - 1
    message = f"{first} (and {extra} more error{'s' if extra > 1 else ''})" if extra > 0 else first
    return Problem(422, "MISSING_FIELDS" if missing else "VALIDATION_ERROR", message, errors, missing_fields=missing,
                   details=details)


def problem_of(exc: CloudletError) -> Problem:
    """The surface-neutral problem a Cloudlet error stands for."""
    problem = Problem(exc.status, exc.code, exc.message)
    if isinstance(exc, Invalid) and exc.field:
        problem.field_errors = {exc.field: [exc.message]}
        problem.details = [FieldError(("body", *exc.field.split(".")), exc.message, exc.code)]
    if isinstance(exc, RateLimited):
        problem.headers = {**exc.headers, "Retry-After": str(exc.retry_after)}
    reason = getattr(exc, "reason", None)  # Gone's, or any error's that says why (e.g. "wrong_email")
    if isinstance(reason, str):
        problem.reason = reason
    return problem


def _from_http(exc: StarletteHTTPException) -> Problem:
    codes = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 401: "UNAUTHENTICATED", 403: "FORBIDDEN",
             413: "PAYLOAD_TOO_LARGE"}
    message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    if exc.status_code == 404 and message == "Not Found":
        message = "No such endpoint."
    return Problem(exc.status_code, codes.get(exc.status_code, "HTTP_ERROR"), message,
                   headers=dict(exc.headers or {}))


def install(app: FastAPI, pick: Callable[[str], Renderer]) -> None:
    """Register handlers that render every error with the renderer `pick` chooses for the path."""

    def respond(request: Request, problem: Problem) -> JSONResponse:
        response = pick(request.url.path)(problem)
        for name, value in problem.headers.items():
            response.headers[name] = value
        return response

    @app.exception_handler(CloudletError)
    async def _cloudlet(request: Request, exc: CloudletError) -> JSONResponse:
        return respond(request, problem_of(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return respond(request, _from_validation(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return respond(request, _from_http(exc))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Only what locates the failure: never the request's headers or body (they carry credentials);
        # kit/logging renders the traceback without locals and cuts it to a bounded length.
        log.exception("unhandled error", path=request.url.path, method=request.method, error=type(exc).__name__)
        response = respond(request, Problem(500, "INTERNAL_ERROR", "An unexpected error occurred; it has been logged."))
        # Starlette sends a 500 from outside every middleware, so the headers they add are set here.
        security_headers.apply(response.headers, request.scope, request.app.state.runtime.settings)
        return response
