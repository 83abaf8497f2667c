"""Audit log entries."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from cloudlet.kit import clock
from cloudlet.kit.db import Base, UTCDateTime


class AuditEntry(Base):
    """One mutating request. Kept after its actor or token is deleted, so ids are not foreign keys."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, index=True)
    actor_user_id: Mapped[int | None] = mapped_column(Integer, index=True)
    actor_email: Mapped[str | None] = mapped_column(String(320))
    token_id: Mapped[int | None] = mapped_column(Integer, index=True)
    ip_address: Mapped[str | None] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(String(500))
    target: Mapped[str | None] = mapped_column(String(200))  # e.g. "project:5", from the path
    status: Mapped[int] = mapped_column(Integer)
    request_id: Mapped[str | None] = mapped_column(String(64))
