"""Webhook tokens: the shared secret of a project's GitHub or GitLab hook, kept sealed and as its digest."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cloudlet.kit import clock
from cloudlet.kit.db import Base, UTCDateTime


class WebhookToken(Base):
    """A secret a project hands to a git host, which proves with it that a delivery comes from that hook.

    GitHub signs each delivery with HMAC-SHA256 keyed with the secret, so the secret itself is needed to check
    it: it is kept sealed under the installation's secret key (kit/secretbox.py), as the outgoing webhooks'
    signing secrets are; reading this table is not enough to forge a delivery. GitLab sends the secret as it is:
    its SHA-256 digest finds the token, as API tokens are found.
    """

    __tablename__ = "webhook_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(String(200))
    purpose: Mapped[str] = mapped_column(String(200), default="")  # what it is for, in the owner's words
    prefix: Mapped[str] = mapped_column(String(32))  # the visible start of the secret
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    secret_sealed: Mapped[str] = mapped_column(Text)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the last delivery it verified
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
