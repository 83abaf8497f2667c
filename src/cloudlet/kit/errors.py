"""Typed errors raised below the routers; each surface renders them in its own format."""

from __future__ import annotations


class CloudletError(Exception):
    """Base of every error a service may raise on purpose. status is the HTTP status it maps to."""

    status = 400
    code = "BAD_REQUEST"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class Invalid(CloudletError):
    """Input that parses but breaks a rule; names the field when there is one."""

    status = 422
    code = "VALIDATION_ERROR"

    def __init__(self, field: str | None, message: str, *, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.field = field


class NotFound(CloudletError):
    """The object does not exist or belongs to another tenant (never say which)."""

    status = 404
    code = "NOT_FOUND"

    def __init__(self, what: str, ident: object = None, *, code: str | None = None) -> None:
        super().__init__(f"{what[:1].upper()}{what[1:]} not found.", code=code)
        self.what = what
        self.ident = ident


class Unauthenticated(CloudletError):
    """No credential, or one that is not valid now."""

    status = 401
    code = "UNAUTHENTICATED"


class Forbidden(CloudletError):
    """The caller is known but may not do this."""

    status = 403
    code = "FORBIDDEN"


class Conflict(CloudletError):
    """The request clashes with the current state (already exists, busy, already done)."""

    status = 409
    code = "CONFLICT"


class TooLarge(CloudletError):
    """Something the request names or carries is larger than a limit allows."""

    status = 413
    code = "TOO_LARGE"


class Gone(CloudletError):
    """The thing existed but is no longer usable (expired, cancelled, accepted)."""

    status = 410
    code = "GONE"

    def __init__(self, message: str, *, reason: str, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.reason = reason


class PaymentRequired(CloudletError):
    """The wallet cannot pay for this."""

    status = 402
    code = "INSUFFICIENT_BALANCE"


class RateLimited(CloudletError):
    """Too many requests; retry_after says when to try again."""

    status = 429
    code = "RATE_LIMIT_EXCEEDED"

    def __init__(self, message: str, *, retry_after: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.headers = headers or {}


class NotConfigured(CloudletError):
    """A feature that the operator has not set up."""

    status = 501
    code = "NOT_CONFIGURED"


class Unavailable(CloudletError):
    """A dependency this request needs is down."""

    status = 503
    code = "UNAVAILABLE"
