"""Structured logs through structlog: key=value for people, JSON for machines."""

from __future__ import annotations

import logging

import structlog


def configure(level: str = "info", *, json: bool = False) -> None:
    """Set up structlog and the standard library's logging to write one event a line."""
    numeric = logging.getLevelName(level.upper())
    logging.basicConfig(format="%(message)s", level=numeric)
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=True,
    )
