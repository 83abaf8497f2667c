"""CyberPanel errors: {"success": false, "error", "error_code", "message"}; bad input is a 400."""

from __future__ import annotations

from fastapi.responses import JSONResponse

from cloudlet.surfaces.errors import Problem

TITLES = {
    "NO_API_KEY": "No API key provided",
    "INVALID_API_KEY": "Invalid API key",
    "INVALID_TOKEN": "Invalid API key",
    "TOKEN_EXPIRED": "API key has expired",
    "EXPIRED_API_KEY": "API key has expired",
    "INACTIVE_API_KEY": "API key is inactive",
    "IP_NOT_ALLOWED": "IP address not allowed",
    "INSUFFICIENT_SCOPE": "Insufficient permissions",
    "RATE_LIMIT_EXCEEDED": "Rate limit exceeded",
    "MISSING_FIELDS": "Missing required fields",
    "VALIDATION_ERROR": "Validation failed",
    "KEY_NOT_FOUND": "API key not found",
    "INVALID_SCOPE": "Invalid scope",
    "START_FAILED": "VPS could not be started",
    "STOP_FAILED": "VPS could not be stopped",
    "RESTART_FAILED": "VPS could not be restarted",
    "VPS_NOT_FOUND": "VPS not found",
    "VPS_SUSPENDED": "VPS is suspended",
    "INSUFFICIENT_BALANCE": "Insufficient balance",
}


def render(problem: Problem) -> JSONResponse:
    """The CyberPanel error envelope."""
    code = problem.code
    if code in ("UNAUTHENTICATED", "INVALID_TOKEN", "TOKEN_EXPIRED"):
        code = "EXPIRED_API_KEY" if code == "TOKEN_EXPIRED" else "INVALID_API_KEY"
    # CyberPanel answers bad input and an unpayable order (INSUFFICIENT_BALANCE) with a 400
    status = 400 if problem.status in (402, 422) else problem.status
    body = {
        "success": False,
        "error": TITLES.get(code, problem.title),
        "error_code": code,
        "message": problem.message,
    }
    if problem.field_errors:
        body["errors"] = problem.field_errors
    return JSONResponse(body, status_code=status)


def envelope(data: object, message: str | None = None) -> dict[str, object]:
    """The CyberPanel success envelope."""
    body: dict[str, object] = {"success": True, "data": data}
    if message is not None:
        body["message"] = message
    return body
