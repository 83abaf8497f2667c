"""The preferences a user keeps: one row per user, written at the first change (until then the defaults hold)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from cloudlet.kit import clock
from cloudlet.kit.db import Base, UTCDateTime

DEFAULT_TIMEZONE = "UTC"
DEFAULT_LOCALE = "en"


class UserPreferences(Base):
    """How a user wants the console to show things and to reach them; they follow the user into every project."""

    __tablename__ = "user_preferences"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True,
                                         autoincrement=False)
    # the region new servers are offered in first; a region removed from the catalogue clears it
    default_region_id: Mapped[int | None] = mapped_column(ForeignKey("regions.id", ondelete="SET NULL"))
    timezone: Mapped[str] = mapped_column(String(64), default=DEFAULT_TIMEZONE)  # an IANA name
    locale: Mapped[str] = mapped_column(String(35), default=DEFAULT_LOCALE)  # a BCP 47 tag
    notify_email: Mapped[bool] = mapped_column(Boolean, default=True)
    notify_in_app: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, onupdate=clock.now)
