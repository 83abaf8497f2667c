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

log = structlog.get_logger(__name__)


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

    @property
    def title(self) -> str:
        """The HTTP reason phrase of the status."""
        return HTTPStatus(self.status).phrase


Renderer = Callable[[Problem], JSONResponse]


def _field_name(loc: tuple[object, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def _from_validation(exc: RequestValidationError) -> Problem:
    errors: dict[str, list[str]] = {}
    missing = False
    for err in exc.errors():
        name = _field_name(tuple(err.get("loc", ())))
        if err.get("type") == "missing":
            missing = True
            text = f"The {name} field is required."
        elif err.get("type") == "json_invalid":
            text = "The request body is not valid JSON."
        else:
            text = f"The {name} field is invalid: {err.get('msg', 'invalid value')}."
        errors.setdefault(name, []).append(text)
    first = next(iter(errors.values()))[0] if errors else "The request is invalid."
    extra = sum(len(v) for v in errors.values()) - 1
    message = f"{first} (and {extra} more error{'s' if extra > 1 else ''})" if extra > 0 else first
    return Problem(422, "MISSING_FIELDS" if missing else "VALIDATION_ERROR", message, errors, missing_fields=missing)


def _from_cloudlet(exc: CloudletError) -> Problem:
    problem = Problem(exc.status, exc.code, exc.message)
    if isinstance(exc, Invalid) and exc.field:
        problem.field_errors = {exc.field: [exc.message]}
    if isinstance(exc, RateLimited):
        problem.headers = {**exc.headers, "Retry-After": str(exc.retry_after)}
    reason = getattr(exc, "reason", None)  # Gone's, or any error's that says why (e.g. "wrong_email")
    if isinstance(reason, str):
        problem.reason = reason
    return problem


def _from_http(exc: StarletteHTTPException) -> Problem:
    codes = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 401: "UNAUTHENTICATED", 403: "FORBIDDEN"}
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
        return respond(request, _from_cloudlet(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return respond(request, _from_validation(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return respond(request, _from_http(exc))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", path=request.url.path, method=request.method)
        return respond(request, Problem(500, "INTERNAL_ERROR", "An unexpected error occurred; it has been logged."))
