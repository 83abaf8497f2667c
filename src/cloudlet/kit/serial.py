"""Timestamp renderings the references use: milliseconds with Z (Evorxa), seconds with Z (others)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import PlainSerializer


def _millis(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _seconds(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


IsoMillis = Annotated[datetime, PlainSerializer(_millis, return_type=str)]
IsoSeconds = Annotated[datetime, PlainSerializer(_seconds, return_type=str)]
