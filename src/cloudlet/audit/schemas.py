"""What the audit log shows: one entry, the filters an operator may apply, and the export formats."""

from __future__ import annotations

import enum
from datetime import datetime

from pydantic import BaseModel, ConfigDict


class AuditEntryRead(BaseModel):
    """One mutating request as the audit log recorded it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    created_at: datetime
    actor_user_id: int | None
    actor_email: str | None
    token_id: int | None
    ip_address: str | None
    method: str
    path: str
    target: str | None  # the request's path parameters, e.g. "instance_id=12"
    status: int
    request_id: str | None


class AuditQuery(BaseModel):
    """Filters on the audit log; every one is optional and they combine with AND."""

    actor_user_id: int | None = None
    token_id: int | None = None
    method: str | None = None  # POST, PUT, PATCH or DELETE (any case)
    path: str | None = None  # a prefix of the request path
    status: int | None = None
    since: datetime | None = None  # inclusive; a time without a zone is read as UTC
    until: datetime | None = None  # exclusive


class ExportFormat(enum.StrEnum):
    """The file formats the audit log exports to."""

    CSV = "csv"
    JSONL = "jsonl"
