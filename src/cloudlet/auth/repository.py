"""SQL for users, refresh tokens, password resets and system flags."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CursorResult, func, or_, select, update
from sqlalchemy.orm import Session

from cloudlet.auth.models import PasswordReset, RefreshToken, SystemFlag, User


def insert(session: Session, user: User) -> User:
    """Add a user and give it its id."""
    session.add(user)
    session.flush()
    return user


def get(session: Session, user_id: int) -> User | None:
    """A user by id."""
    return session.get(User, user_id)


def find_by_email(session: Session, email: str) -> User | None:
    """A user by (lower-cased) email."""
    return session.scalars(select(User).where(User.email == email)).first()


def find_by_github_id(session: Session, github_id: int) -> User | None:
    """The user linked to a GitHub account."""
    return session.scalars(select(User).where(User.github_id == github_id)).first()


def count(session: Session) -> int:
    """How many users exist."""
    return int(session.scalar(select(func.count()).select_from(User)) or 0)


def page(session: Session, limit: int, offset: int) -> list[User]:
    """Users in id order, one page."""
    return list(session.scalars(select(User).order_by(User.id).limit(limit).offset(offset)))


def delete(session: Session, user: User) -> None:
    """Remove a user; the database cascades to its sessions, tokens and memberships."""
    session.delete(user)
    session.flush()


def accept_mfa_step(session: Session, user_id: int, step: int) -> bool:
    """Record a TOTP step as used unless it (or a later one) already was; False when it was."""
    result = session.execute(
        update(User)
        .where(User.id == user_id, or_(User.mfa_last_step.is_(None), User.mfa_last_step < step))
        .values(mfa_last_step=step)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result) == 1


def has_flag(session: Session, key: str) -> bool:
    """Whether a once-only fact is recorded."""
    return session.get(SystemFlag, key) is not None


def insert_flag(session: Session, key: str) -> None:
    """Record a once-only fact; raises IntegrityError if another transaction already did."""
    session.add(SystemFlag(key=key))
    session.flush()


def insert_refresh_token(session: Session, token: RefreshToken) -> RefreshToken:
    """Add one link of a refresh-token family."""
    session.add(token)
    session.flush()
    return token


def find_refresh_token(session: Session, token_hash: str) -> RefreshToken | None:
    """A refresh token by its digest."""
    return session.scalars(select(RefreshToken).where(RefreshToken.token_hash == token_hash)).first()


def spend_refresh_token(session: Session, token_id: int, now: datetime) -> bool:
    """Mark a live token used; False when a concurrent request spent (or revoked) it first."""
    result = session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == token_id, RefreshToken.used_at.is_(None), RefreshToken.revoked_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result) == 1


def family_active(session: Session, user_id: int, family: str) -> bool:
    """Whether the user's refresh-token family has a token that was not revoked (the session lives)."""
    alive = select(RefreshToken.id).where(RefreshToken.family == family, RefreshToken.user_id == user_id,
                                          RefreshToken.revoked_at.is_(None)).limit(1)
    return session.execute(alive).first() is not None


def revoke_family(session: Session, family: str, now: datetime) -> None:
    """Revoke every token of a family."""
    session.execute(
        update(RefreshToken)
        .where(RefreshToken.family == family, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )


def revoke_user_families(session: Session, user_id: int, now: datetime) -> None:
    """Revoke every refresh token of a user."""
    session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )


def insert_password_reset(session: Session, reset: PasswordReset) -> PasswordReset:
    """Add a password-reset token."""
    session.add(reset)
    session.flush()
    return reset


def find_password_reset(session: Session, token_hash: str) -> PasswordReset | None:
    """A password-reset token by its digest."""
    return session.scalars(select(PasswordReset).where(PasswordReset.token_hash == token_hash)).first()


def use_password_reset(session: Session, reset_id: int, now: datetime) -> bool:
    """Mark a reset token used; False when a concurrent request used it first."""
    result = session.execute(
        update(PasswordReset)
        .where(PasswordReset.id == reset_id, PasswordReset.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result) == 1


def retire_password_resets(session: Session, user_id: int, now: datetime) -> None:
    """Mark every unused reset token of a user used, so older links stop working too."""
    session.execute(
        update(PasswordReset)
        .where(PasswordReset.user_id == user_id, PasswordReset.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )


def _rowcount(result: object) -> int:
    return result.rowcount if isinstance(result, CursorResult) else 0
