"""Users and the secrets that prove who they are."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from cloudlet.kit import clock
from cloudlet.kit.db import Base, UTCDateTime, enum_column


class UserStatus(enum.StrEnum):
    """Whether a user may sign in."""

    ACTIVE = "active"
    SUSPENDED = "suspended"


class User(Base):
    """A person with an account. Admins run the cloud; everyone else uses it."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)  # stored lower-cased
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str | None] = mapped_column(String(200))  # None for OAuth-only accounts
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[UserStatus] = mapped_column(
        enum_column(UserStatus),
        default=UserStatus.ACTIVE,
    )
    suspended_reason: Mapped[str | None] = mapped_column(String(500))
    onboarded: Mapped[bool] = mapped_column(Boolean, default=False)
    mfa_secret: Mapped[str | None] = mapped_column(String(255))  # sealed (kit/secretbox); active once verified
    mfa_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    mfa_last_step: Mapped[int | None] = mapped_column(BigInteger)  # TOTP time step last accepted
    github_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    # Every access JWT carries the value this had when it was issued; signing out raises it, and a JWT
    # with an older value stands only while its own session does. Read with the user row each request
    # loads anyway, so a JWT issued since the last sign-out costs no query.
    access_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The project every user gets at sign-up and can never leave. Kept here so that a request's
    # default project comes with the user row instead of another query; no foreign key, since
    # projects already point at users (created_by) and the two tables are made in one transaction.
    personal_project_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, onupdate=clock.now)


class RefreshToken(Base):
    """One link of a refresh-token family; each use spends it and issues the next link."""

    __tablename__ = "refresh_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    family: Mapped[str] = mapped_column(String(64), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)


class PasswordReset(Base):
    """A single-use, expiring password-reset token sent by email."""

    __tablename__ = "password_resets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)


class SystemFlag(Base):
    """Once-only facts about the installation, such as "bootstrapped"; the key's uniqueness is the lock."""

    __tablename__ = "system_flags"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
