"""One-time console tickets: the table behind a VNC link, and its queries.

A ticket is what a console websocket presents instead of a credential. Only the SHA-256 digest of
its token is kept; it is good for one connection, until it expires.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, delete, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from cloudlet.kit import clock
from cloudlet.kit.db import Base, UTCDateTime


class ConsoleTicket(Base):
    """A one-time permission to open an instance's VNC console through the control plane's proxy."""

    __tablename__ = "console_tickets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256 hex of the token; never the token
    instance_id: Mapped[int] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    host: Mapped[str] = mapped_column(String(255))  # where the proxy connects: the guest's VNC server
    port: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)


def insert(session: Session, ticket: ConsoleTicket) -> ConsoleTicket:
    """Store a new ticket."""
    session.add(ticket)
    session.flush()
    return ticket


def by_digest(session: Session, digest: str) -> ConsoleTicket | None:
    """The ticket whose token has this digest."""
    return session.scalars(select(ConsoleTicket).where(ConsoleTicket.digest == digest)).one_or_none()


def use(session: Session, ticket_id: int, now: datetime) -> bool:
    """Mark the ticket used if it is unused and unexpired; False when another connection was first (or it expired)."""
    result = session.execute(
        update(ConsoleTicket)
        .where(ConsoleTicket.id == ticket_id, ConsoleTicket.used_at.is_(None), ConsoleTicket.expires_at > now)
        .values(used_at=now)
        .execution_options(synchronize_session=False))
    return bool(getattr(result, "rowcount", 0) == 1)


def purge(session: Session, expired_before: datetime) -> None:
    """Forget tickets that expired before the given time."""
    session.execute(delete(ConsoleTicket).where(ConsoleTicket.expires_at < expired_before)
                    .execution_options(synchronize_session=False))
