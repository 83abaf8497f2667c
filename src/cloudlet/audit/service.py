"""Writing and reading the audit log."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC

from sqlalchemy.orm import Session

from cloudlet.audit import repository
from cloudlet.audit.schemas import AuditEntryRead, AuditQuery, ExportFormat
from cloudlet.kit import clock
from cloudlet.kit.db import Database
from cloudlet.kit.errors import Invalid
from cloudlet.kit.pagination import MAX_OFFSET, Page

AUDITED_METHODS = ("POST", "PUT", "PATCH", "DELETE")
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
EXPORT_MAX_ROWS = 100_000  # an export stops here; narrow the filters (since/until) for more
EXPORT_BATCH = 1_000
EXPORT_COLUMNS = tuple(AuditEntryRead.model_fields)
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class AuditRecord:
    """One mutating request as the audit log keeps it."""

    actor_user_id: int | None
    actor_email: str | None
    token_id: int | None
    ip: str | None
    method: str
    path: str
    target: str | None
    status: int
    request_id: str | None


def record_many(session: Session, records: Sequence[AuditRecord]) -> None:
    """Append mutating requests to the audit log in one statement."""
    now = clock.now()
    repository.insert_many(session, [
        {"created_at": now, "actor_user_id": r.actor_user_id, "actor_email": r.actor_email, "token_id": r.token_id,
         "ip_address": r.ip, "method": r.method, "path": r.path[:500],
         "target": r.target[:200] if r.target else None, "status": r.status, "request_id": r.request_id}
        for r in records
    ])


def check_query(query: AuditQuery) -> AuditQuery:
    """The filters made canonical (method upper-cased, times in UTC), or Invalid naming the bad one."""
    method = query.method.strip().upper() if query.method is not None else None
    if method is not None and method not in AUDITED_METHODS:
        raise Invalid("method", f"method must be one of {', '.join(AUDITED_METHODS)} (only these are audited).")
    if query.status is not None and not 100 <= query.status <= 599:
        raise Invalid("status", "status must be an HTTP status code between 100 and 599.")
    for name in ("actor_user_id", "token_id"):
        value = getattr(query, name)
        if value is not None and value < 1:
            raise Invalid(name, f"{name} must be a positive id.")
    since = query.since.replace(tzinfo=UTC) if query.since and query.since.tzinfo is None else query.since
    until = query.until.replace(tzinfo=UTC) if query.until and query.until.tzinfo is None else query.until
    if since is not None and until is not None and since >= until:
        raise Invalid("since", "since must be earlier than until.")
    return query.model_copy(update={"method": method, "since": since, "until": until,
                                    "path": query.path or None})


def list_entries(session: Session, query: AuditQuery, *, limit: int = DEFAULT_LIMIT,
                 offset: int = 0) -> Page[AuditEntryRead]:
    """A page of the entries that match the filters, newest first."""
    if not 1 <= limit <= MAX_LIMIT:
        raise Invalid("limit", f"limit must be between 1 and {MAX_LIMIT}.")
    if not 0 <= offset <= MAX_OFFSET:
        raise Invalid("offset", f"offset must be between 0 and {MAX_OFFSET}.")
    query = check_query(query)
    rows = repository.page(session, query, limit=limit, offset=offset)
    return Page(items=[AuditEntryRead.model_validate(r) for r in rows],
                total=repository.count(session, query), limit=limit, offset=offset)


@dataclass(frozen=True)
class AuditExport:
    """An export about to be streamed: how many entries match, how many it carries, and its lines."""

    total: int  # entries that match the filters
    rows: int  # entries the export carries: total, capped at EXPORT_MAX_ROWS
    filename: str
    lines: Iterator[str]

    @property
    def truncated(self) -> bool:
        """Whether more entries matched than the export carries."""
        return self.rows < self.total


def start_export(session: Session, db: Database, query: AuditQuery, fmt: ExportFormat) -> AuditExport:
    """Check the filters and count the matches now (so a bad filter fails before streaming starts)."""
    query = check_query(query)
    # Fix the upper end now, so the count and the rows agree however many requests land meanwhile.
    before_id = repository.newest_id(session) + 1
    total = repository.count(session, query, before_id=before_id)
    stamp = clock.now().strftime("%Y%m%dT%H%M%SZ")
    return AuditExport(total=total, rows=min(total, EXPORT_MAX_ROWS), filename=f"audit-logs-{stamp}.{fmt.value}",
                       lines=export_lines(db, query, fmt, before_id=before_id))


def export_lines(db: Database, query: AuditQuery, fmt: ExportFormat, *, before_id: int | None = None,
                 max_rows: int = EXPORT_MAX_ROWS) -> Iterator[str]:
    """Matching entries below before_id as CSV (with a header) or JSON Lines, newest first, at most max_rows.

    Reads in batches, each in its own short read transaction, so an export of many rows neither
    holds one long transaction open nor keeps every row in memory; it walks ids downward, so
    entries written while it runs are not included.
    CSV cells that a spreadsheet would run as a formula are prefixed with a quote.
    """
    query = check_query(query)
    if fmt is ExportFormat.CSV:
        yield _csv_line(EXPORT_COLUMNS)
    sent = 0
    while sent < max_rows:
        with db.session(write=False) as session:
            rows = [AuditEntryRead.model_validate(r) for r in repository.batch_before(
                session, query, before_id=before_id, size=min(EXPORT_BATCH, max_rows - sent))]
        if not rows:
            return
        chunk = io.StringIO()
        for entry in rows:
            if fmt is ExportFormat.CSV:
                chunk.write(_csv_line([_csv_cell(v) for v in entry.model_dump(mode="json").values()]))
            else:
                chunk.write(json.dumps(entry.model_dump(mode="json"), separators=(",", ":")) + "\n")
        yield chunk.getvalue()
        sent += len(rows)
        before_id = rows[-1].id


def _csv_cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _csv_line(values: tuple[str, ...] | list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(values)
    return buffer.getvalue()
