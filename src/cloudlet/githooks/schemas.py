"""Webhook tokens as they read, and the deliveries GitHub and GitLab send (only the fields a push needs)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

GIT_OBJECT = r"^[0-9a-f]{40}([0-9a-f]{24})?$"  # a SHA-1 or SHA-256 object name


class WebhookTokenCreate(BaseModel):
    """A new token: a name, and optionally what it is for."""

    name: str = Field(min_length=1, max_length=200)
    purpose: str = Field(default="", max_length=200, description='What it is for, e.g. "deploy shop from main".')


class WebhookTokenRead(BaseModel):
    """A token without its secret: only the visible prefix."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    project_id: int
    name: str
    purpose: str
    prefix: str
    last_used_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class MintedWebhookToken:
    """A new token and its secret, which exists only in this answer."""

    token: WebhookTokenRead
    secret: str


@dataclass(frozen=True)
class Delivery:
    """One inbound delivery as it arrived: the raw body (what signatures cover) and the headers that matter."""

    body: bytes
    content_type: str
    event: str | None  # X-GitHub-Event, X-Gitlab-Event
    credential: str | None  # X-Hub-Signature-256, X-Gitlab-Token
    delivery_id: str | None  # X-GitHub-Delivery, X-Gitlab-Event-UUID
    token_id: int | None  # the token the hook's URL names (?token_id=)
    ip: str | None


class ReceiptStatus(enum.StrEnum):
    """What became of a verified delivery."""

    RECORDED = "recorded"  # a push, recorded as a git.push event
    PONG = "pong"  # GitHub's ping when a hook is set up
    IGNORED = "ignored"  # another event: verified, nothing recorded


class HookReceipt(BaseModel):
    """The answer to a verified delivery."""

    status: ReceiptStatus
    event: str
    event_id: int | None = None  # the git.push event recorded
    message: str


class _Named(BaseModel):
    name: str = Field(min_length=1, max_length=255)


class _GitHubRepository(BaseModel):
    full_name: str = Field(min_length=1, max_length=500)


class GitHubPushBody(BaseModel):
    """GitHub's push event payload (the fields git deploy needs)."""

    ref: str = Field(min_length=1, max_length=1000)
    after: str = Field(pattern=GIT_OBJECT)
    repository: _GitHubRepository
    pusher: _Named


class _GitLabProject(BaseModel):
    path_with_namespace: str = Field(min_length=1, max_length=500)


class GitLabPushBody(BaseModel):
    """GitLab's Push Hook and Tag Push Hook payload (the fields git deploy needs)."""

    ref: str = Field(min_length=1, max_length=1000)
    after: str = Field(pattern=GIT_OBJECT)
    project: _GitLabProject
    user_username: str | None = Field(default=None, max_length=255)
    user_name: str | None = Field(default=None, max_length=255)
