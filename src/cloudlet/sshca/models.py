"""The SSH certificate authority: its signing keys (sealed) and the certificates it issued.

One key signs at a time (`active`); keys generated ahead of a rotation, and the one a rotation replaced,
stay `trusted` by guests until an operator retires them, so certificates signed by either keep working
while guests learn the new key. Certificates are kept with their text: the revocation list is built from
the revoked ones that have not yet expired.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cloudlet.kit import clock
from cloudlet.kit.db import Base, UTCDateTime, enum_column


class CaKeyState(enum.StrEnum):
    """Where a CA key stands: signing, trusted only, or no longer trusted."""

    ACTIVE = "active"
    TRUSTED = "trusted"
    RETIRED = "retired"


class SshCaKey(Base):
    """A CA key pair; the private half sealed under the installation's secret."""

    __tablename__ = "ssh_ca_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    algorithm: Mapped[str] = mapped_column(String(32))  # "ssh-ed25519"
    public_key: Mapped[str] = mapped_column(Text)  # OpenSSH line
    fingerprint: Mapped[str] = mapped_column(String(64))  # "SHA256:..."
    sealed_private_key: Mapped[str] = mapped_column(Text)
    state: Mapped[CaKeyState] = mapped_column(enum_column(CaKeyState))
    # 1 on the active key, NULL on every other: the unique index keeps a single signing key
    active_slot: Mapped[int | None] = mapped_column(Integer, unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SshCertificate(Base):
    """A user certificate the CA signed for the servers of a project."""

    __tablename__ = "ssh_certificates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    ca_key_id: Mapped[int] = mapped_column(ForeignKey("ssh_ca_keys.id", ondelete="RESTRICT"))
    serial: Mapped[int] = mapped_column(BigInteger, unique=True)
    key_id: Mapped[str] = mapped_column(String(200))
    principals: Mapped[list[str]] = mapped_column(JSON)
    public_key_fingerprint: Mapped[str] = mapped_column(String(64))
    certificate: Mapped[str] = mapped_column(Text)
    valid_after: Mapped[datetime] = mapped_column(UTCDateTime)
    valid_before: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
