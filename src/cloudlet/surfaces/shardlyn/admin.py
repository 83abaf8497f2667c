"""Shardlyn surface: platform administration - the audit log and its export."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from cloudlet.audit import service as audit
from cloudlet.audit.schemas import AuditEntryRead, AuditQuery, ExportFormat
from cloudlet.kit.ids import MAX_ID
from cloudlet.surfaces.deps import AdminCaller, AppRuntime, DbSession
from cloudlet.surfaces.params import Offset

router = APIRouter(prefix="/v1/admin", tags=["shardlyn"])

MEDIA_TYPES = {ExportFormat.CSV: "text/csv; charset=utf-8", ExportFormat.JSONL: "application/x-ndjson"}


class AuditLogList(BaseModel):
    """A page of the audit log, newest first."""

    logs: list[AuditEntryRead]
    total: int
    limit: int
    offset: int


def audit_query(
    actor_user_id: Annotated[int | None, Query(ge=1, le=MAX_ID, description="Only requests by this user.")] = None,
    token_id: Annotated[int | None, Query(ge=1, le=MAX_ID, description="Only requests made with this API token.")]
    = None,
    method: Annotated[str | None, Query(description="POST, PUT, PATCH or DELETE.")] = None,
    path: Annotated[str | None, Query(description="Only paths that start with this prefix.")] = None,
    status: Annotated[int | None, Query(ge=100, le=599, description="Only answers with this HTTP status.")] = None,
    since: Annotated[datetime | None, Query(description="ISO 8601 time, inclusive (UTC if no zone).")] = None,
    until: Annotated[datetime | None, Query(description="ISO 8601 time, exclusive (UTC if no zone).")] = None,
) -> AuditQuery:
    """The audit-log filters of a request's query string."""
    return AuditQuery(actor_user_id=actor_user_id, token_id=token_id, method=method, path=path, status=status,
                      since=since, until=until)


Filters = Annotated[AuditQuery, Depends(audit_query)]


@router.get("/audit-logs", response_model=AuditLogList, summary="List audit logs")
def list_audit_logs(
    caller: AdminCaller,
    db: DbSession,
    filters: Filters,
    limit: Annotated[int, Query(ge=1, le=audit.MAX_LIMIT, description=f"At most {audit.MAX_LIMIT}.")]
    = audit.DEFAULT_LIMIT,
    offset: Offset = 0,
) -> AuditLogList:
    """Every mutating request on every surface, newest first, filtered."""
    page = audit.list_entries(db, filters, limit=limit, offset=offset)
    return AuditLogList(logs=page.items, total=page.total, limit=page.limit, offset=page.offset)


@router.get(
    "/audit-logs/export",
    summary="Export audit logs",
    response_class=StreamingResponse,
    responses={200: {"content": {MEDIA_TYPES[ExportFormat.CSV]: {}, MEDIA_TYPES[ExportFormat.JSONL]: {}},
                     "description": f"A file of at most {audit.EXPORT_MAX_ROWS:,} entries, newest first."}},
)
def export_audit_logs(
    caller: AdminCaller,
    db: DbSession,
    runtime: AppRuntime,
    filters: Filters,
    format: Annotated[ExportFormat, Query(description="csv (default) or jsonl.")] = ExportFormat.CSV,
) -> StreamingResponse:
    """The filtered audit log as a CSV or JSON Lines download, streamed.

    Bounded at EXPORT_MAX_ROWS (100,000) entries: X-Total-Count says how many matched,
    X-Export-Rows how many the file carries and X-Export-Truncated whether some were left out
    (narrow the filters, e.g. with since/until, to fetch the rest).
    """
    export = audit.start_export(db, runtime.db, filters, format)
    return StreamingResponse(_chunks(export.lines), media_type=MEDIA_TYPES[format], headers={
        "Content-Disposition": f'attachment; filename="{export.filename}"',
        "X-Total-Count": str(export.total),
        "X-Export-Rows": str(export.rows),
        "X-Export-Limit": str(audit.EXPORT_MAX_ROWS),
        "X-Export-Truncated": "true" if export.truncated else "false",
    })


def _chunks(lines: Iterator[str]) -> Iterator[bytes]:
    for text in lines:
        yield text.encode("utf-8")
