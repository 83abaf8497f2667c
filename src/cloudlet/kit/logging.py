"""Structured logs through structlog: key=value for people, JSON for machines.

Logs are read by more people than the data they describe, so no line carries a traceback's local
variables (they held the Authorization header and the Settings), a value under a secret-sounding
key, or more than a few kilobytes: a log line is bounded whatever the request sent.
"""

from __future__ import annotations

import functools
import logging
import re
from typing import Any, TextIO

import structlog
from structlog.tracebacks import ExceptionDictTransformer
from structlog.types import EventDict

MAX_VALUE_CHARS = 2_000  # one value of a log line (a path, a message, a header someone logged)
MAX_TRACEBACK_CHARS = 12_000  # a traceback: its head says where it began, its tail what failed
MAX_TRACEBACK_LINE_CHARS = 500  # one line of it, so that a huge error message cannot crowd out the frames
MAX_FRAMES = 20  # of a traceback rendered as JSON
REDACTED = "[redacted]"
# Keys whose values are credentials whatever their type: a key ending so (access_token, smtp_password),
# while token_id or password_changed_at stay readable.
SECRET_KEY_ENDINGS = ("authorization", "password", "secret", "secret_key", "token", "cookie", "api_key", "credential")
# A Telegram bot's token is part of every Bot API URL (/bot<id>:<secret>/method), which HTTP clients log
BOT_TOKEN_IN_URL = re.compile(r"/bot\d+:[A-Za-z0-9_-]+")


def hide_url_secrets(text: str) -> str:
    """The text with the secrets that travel in URLs (a Telegram bot's token) replaced by a marker."""
    return BOT_TOKEN_IN_URL.sub(f"/bot{REDACTED}", text) if "/bot" in text else text


def shorten(text: str, limit: int) -> str:
    """The text, or its head and tail around a note of how much was cut, when longer than limit."""
    if len(text) <= limit:
        return text
    head = limit // 4
    tail = limit - head
    return f"{text[:head]}\n... [{len(text) - limit} characters cut] ...\n{text[-tail:]}"


def shorten_traceback(text: str) -> str:
    """A traceback with each line cut to MAX_TRACEBACK_LINE_CHARS and the whole to MAX_TRACEBACK_CHARS."""
    lines = [shorten(line, MAX_TRACEBACK_LINE_CHARS).replace("\n", " ") for line in text.splitlines()]
    return shorten("\n".join(lines), MAX_TRACEBACK_CHARS)


def _shorten_inside(value: Any) -> Any:
    """A structure (a JSON traceback) with each string in it cut to MAX_TRACEBACK_LINE_CHARS."""
    if isinstance(value, str):
        return shorten(value, MAX_TRACEBACK_LINE_CHARS)
    if isinstance(value, dict):
        return {k: _shorten_inside(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_shorten_inside(v) for v in value]
    return value


@functools.lru_cache(maxsize=4096)  # a line's keys are a few names written in the code, asked on every line
def _is_secret_key(key: str) -> bool:
    return key.lower().replace("-", "_").endswith(SECRET_KEY_ENDINGS)


def redact_secrets(logger: Any, name: str, event_dict: EventDict) -> EventDict:
    """Replace the values of secret-sounding keys (authorization, password, token, ...) by a marker."""
    for key in event_dict:
        if key != "event" and _is_secret_key(key):
            event_dict[key] = REDACTED
    return event_dict


def bound_values(logger: Any, name: str, event_dict: EventDict) -> EventDict:
    """Cut every value of the event to a fixed length, so that no request can make a line huge."""
    for key, value in event_dict.items():
        if value is None or isinstance(value, bool | int | float):
            continue
        if key in ("exception", "stack") and isinstance(value, str):
            event_dict[key] = shorten_traceback(value)
            continue
        limit = MAX_TRACEBACK_CHARS if key in ("exception", "stack") else MAX_VALUE_CHARS
        if isinstance(value, str):
            event_dict[key] = shorten(value, limit)
        elif len(repr(value)) > limit:  # a structure (a JSON traceback, a dict): kept whole when small
            value = _shorten_inside(value)
            text = repr(value)
            event_dict[key] = value if len(text) <= MAX_TRACEBACK_CHARS else shorten(text, limit)
    return event_dict


class BoundedFormatter(logging.Formatter):
    """The standard library's records (uvicorn, SQLAlchemy, DBOS, httpx) under the same bounds as structlog's, and
    without the secrets that URLs carry."""

    def formatException(self, ei: Any) -> str:  # noqa: N802  # the standard library's name
        """A plain traceback (never locals), cut to MAX_TRACEBACK_CHARS."""
        return shorten_traceback(hide_url_secrets(super().formatException(ei)))

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802  # the standard library's name
        """The message, without URL secrets, cut to MAX_VALUE_CHARS."""
        return shorten(hide_url_secrets(super().formatMessage(record)), MAX_VALUE_CHARS)


def processors(*, json: bool) -> list[structlog.types.Processor]:
    """The processor chain every event goes through: context, redaction, plain traceback, bounds, render."""
    exceptions = (
        structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False, max_frames=MAX_FRAMES))
        if json else structlog.processors.format_exc_info  # Python's own format: no locals, unlike rich's
    )
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json
        else structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)
    )
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
        exceptions,
        bound_values,
        renderer,
    ]


def configure(level: str = "info", *, json: bool = False, stream: TextIO | None = None) -> None:
    """Set up structlog and the standard library's logging to write one bounded event a line."""
    numeric = logging.getLevelName(level.upper())
    handler = logging.StreamHandler(stream)
    handler.setFormatter(BoundedFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=numeric, handlers=[handler])
    structlog.configure(
        processors=processors(json=json),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=True,
    )
