"""Writing and reading the audit log."""

from __future__ import annotations

from sqlalchemy.orm import Session

from cloudlet.audit import repository
from cloudlet.audit.models import AuditEntry
from cloudlet.kit import clock


def record(session: Session, *, actor_user_id: int | None, actor_email: str | None, token_id: int | None,
           ip: str | None, method: str, path: str, target: str | None, status: int,
           request_id: str | None) -> None:
    """Append one mutating request to the audit log."""
    repository.insert(session, AuditEntry(
        created_at=clock.now(), actor_user_id=actor_user_id, actor_email=actor_email, token_id=token_id,
        ip_address=ip, method=method, path=path[:500], target=target[:200] if target else None,
        status=status, request_id=request_id,
    ))
