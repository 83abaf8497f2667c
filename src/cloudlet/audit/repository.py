"""SQL for the audit log."""

from __future__ import annotations

from sqlalchemy.orm import Session

from cloudlet.audit.models import AuditEntry


def insert(session: Session, entry: AuditEntry) -> None:
    """Append an entry."""
    session.add(entry)
