"""SQL for users' preferences."""

from __future__ import annotations

from sqlalchemy.orm import Session

from cloudlet.preferences.models import UserPreferences


def get(session: Session, user_id: int) -> UserPreferences | None:
    """A user's preferences row, if they ever changed one."""
    return session.get(UserPreferences, user_id)


def insert(session: Session, row: UserPreferences) -> UserPreferences:
    """Add a user's preferences row."""
    session.add(row)
    session.flush()
    return row
