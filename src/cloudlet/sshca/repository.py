"""SQL of the SSH CA."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloudlet.sshca.models import CaKeyState, SshCaKey, SshCertificate


def active_key(session: Session) -> SshCaKey | None:
    """The key that signs now."""
    return session.scalars(select(SshCaKey).where(SshCaKey.state == CaKeyState.ACTIVE)).first()


def keys(session: Session) -> Sequence[SshCaKey]:
    """Every CA key, oldest first."""
    return session.scalars(select(SshCaKey).order_by(SshCaKey.id)).all()


def key_by_uuid(session: Session, uuid: str) -> SshCaKey | None:
    """One CA key."""
    return session.scalars(select(SshCaKey).where(SshCaKey.uuid == uuid)).first()


def trusted_keys(session: Session) -> Sequence[SshCaKey]:
    """The keys guests trust: the active one and those not yet retired, oldest first."""
    return session.scalars(select(SshCaKey).where(SshCaKey.state != CaKeyState.RETIRED)
                           .order_by(SshCaKey.id)).all()


def certificates(session: Session, project_ids: Sequence[int]) -> list[tuple[SshCertificate, SshCaKey]]:
    """The projects' certificates with their signing keys, newest first."""
    query = (select(SshCertificate, SshCaKey).join(SshCaKey, SshCertificate.ca_key_id == SshCaKey.id)
             .where(SshCertificate.project_id.in_(project_ids)).order_by(SshCertificate.id.desc()))
    return [(cert, key) for cert, key in session.execute(query)]


def certificate(session: Session, uuid: str, *, lock: bool = False) -> tuple[SshCertificate, SshCaKey] | None:
    """One certificate with its signing key."""
    query = (select(SshCertificate, SshCaKey).join(SshCaKey, SshCertificate.ca_key_id == SshCaKey.id)
             .where(SshCertificate.uuid == uuid))
    if lock:
        query = query.with_for_update(of=SshCertificate)
    found = session.execute(query).first()
    return None if found is None else (found[0], found[1])


def serial_taken(session: Session, serial: int) -> bool:
    """Whether a certificate already has this serial."""
    return session.scalar(select(SshCertificate.id).where(SshCertificate.serial == serial)) is not None


def revoked_in_force(session: Session, now: datetime) -> Sequence[SshCertificate]:
    """Revoked certificates that have not expired yet (an expired one is refused anyway), by serial."""
    return session.scalars(select(SshCertificate).where(SshCertificate.revoked_at.is_not(None),
                                                        SshCertificate.valid_before > now)
                           .order_by(SshCertificate.serial)).all()
