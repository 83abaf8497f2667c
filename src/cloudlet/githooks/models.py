"""Webhook tokens: the shared secret of a project's GitHub or GitLab hook, kept only as its SHA-256 digest."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from cloudlet.kit import clock
from cloudlet.kit.db import Base, UTCDateTime


class WebhookToken(Base):
    """A secret a project hands to a git host, which proves with it that a delivery comes from that hook.

    The secret is longer than SHA-256's 64-byte block, so HMAC-SHA256 keyed with it equals HMAC-SHA256 keyed
    with its digest (RFC 2104 hashes long keys first): the digest verifies GitHub's X-Hub-Signature-256 and
    GitLab's X-Gitlab-Token alike, and the secret itself is never stored. Like any HMAC verifier's key, the
    digest could sign a GitHub delivery: whoever reads this table could forge one (not a GitLab one, nor any
    API request), so it is never shown, logged or returned.
    """

    __tablename__ = "webhook_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(String(200))
    purpose: Mapped[str] = mapped_column(String(200), default="")  # what it is for, in the owner's words
    prefix: Mapped[str] = mapped_column(String(32))  # the visible start of the secret
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the last delivery it verified
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
