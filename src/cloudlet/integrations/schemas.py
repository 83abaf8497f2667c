"""What an integration is made of per type, how it reads (secrets masked), and how its deliveries read."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from cloudlet.integrations.models import DeliveryStatus, IntegrationType

NAME_CHARS = 100
MAX_EVENT_KINDS = 50
ALL_EVENTS = "*"


class SlackConfig(BaseModel):
    """A Slack incoming webhook (https://hooks.slack.com/services/...): its URL holds its token."""

    model_config = ConfigDict(extra="forbid")

    webhook_url: str = Field(max_length=2048, description="The incoming webhook's URL (kept sealed, shown masked).")


class DiscordConfig(BaseModel):
    """A Discord channel webhook (https://discord.com/api/webhooks/{id}/{token})."""

    model_config = ConfigDict(extra="forbid")

    webhook_url: str = Field(max_length=2048, description="The channel webhook's URL (kept sealed, shown masked).")


class TelegramConfig(BaseModel):
    """A chat of the operator's Telegram bot, named by the link id the bot answers /start with in that chat."""

    model_config = ConfigDict(extra="forbid")

    chat_id: str = Field(min_length=1, max_length=64,
                         description="The link id the bot gives when /start is sent to it in the chat.")


class WebhookConfig(BaseModel):
    """Any HTTP(S) endpoint: a JSON body, signed with X-Webhook-Signature when a secret is given."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2048, description="Where to POST (kept sealed, shown masked).")
    secret: str | None = Field(default=None, min_length=8, max_length=500,
                               description="The HMAC-SHA256 signing secret (kept sealed, shown masked).")


class EmailConfig(BaseModel):
    """An inbox, written to through Cloudlet's outbox."""

    model_config = ConfigDict(extra="forbid")

    address: EmailStr = Field(max_length=320)


CONFIGS: dict[IntegrationType, type[BaseModel]] = {
    IntegrationType.SLACK: SlackConfig,
    IntegrationType.DISCORD: DiscordConfig,
    IntegrationType.TELEGRAM: TelegramConfig,
    IntegrationType.WEBHOOK: WebhookConfig,
    IntegrationType.EMAIL: EmailConfig,
}


class IntegrationCreate(BaseModel):
    """A new integration: its type, a name, the type's config, the event kinds it receives (default every kind)."""

    type: IntegrationType
    name: str = Field(min_length=1, max_length=NAME_CHARS)
    config: dict[str, Any] = Field(description="The type's settings: see GET /v1/integrations/types.")
    events: list[str] | None = Field(default=None, max_length=MAX_EVENT_KINDS,
                                     description='Event kinds it receives; null or ["*"]: every kind.')
    enabled: bool = True


class IntegrationUpdate(BaseModel):
    """What changes: each field given replaces the old one (a config's masked secrets, sent back, keep theirs)."""

    name: str | None = Field(default=None, min_length=1, max_length=NAME_CHARS)
    config: dict[str, Any] | None = None
    events: list[str] | None = Field(default=None, max_length=MAX_EVENT_KINDS)
    enabled: bool | None = None


class IntegrationRead(BaseModel):
    """An integration as its project sees it: never a secret whole."""

    id: int
    project_id: int
    type: IntegrationType
    name: str
    config: dict[str, Any]
    events: list[str]
    enabled: bool
    created_at: datetime
    updated_at: datetime


class ConfigFieldRead(BaseModel):
    """One setting of an integration type."""

    name: str
    required: bool
    secret: bool  # kept sealed and shown masked
    description: str


class IntegrationTypeRead(BaseModel):
    """A type one can create, what it needs, and whether this installation offers it."""

    type: IntegrationType
    name: str
    description: str
    available: bool
    rate_limit: str | None  # how fast one destination is sent to, when the service sets a limit
    config: list[ConfigFieldRead]


class IntegrationTypesRead(BaseModel):
    """Every type, and the event kinds an integration may receive."""

    types: list[IntegrationTypeRead]
    events: list[str]


class DeliveryRead(BaseModel):
    """One message in an integration's log: what it told of and how it went."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    integration_id: int
    test: bool
    kinds: list[str]
    event_ids: list[int]
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None
