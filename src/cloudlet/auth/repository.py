"""SQL for users, refresh tokens, password resets and system flags."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloudlet.auth.models import User


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


def count(session: Session) -> int:
    """How many users exist."""
    return int(session.scalar(select(func.count()).select_from(User)) or 0)
