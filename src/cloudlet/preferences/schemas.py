"""How preferences and the settings view read, and what a change may say."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from cloudlet.instances.schemas import SshKeyRead

# language, optional script, optional region: "en", "pt-BR", "zh-Hant-TW", "es-419"
LOCALE_PATTERN = r"^[a-z]{2,3}(-[A-Z][a-z]{3})?(-([A-Z]{2}|[0-9]{3}))?$"


class PreferencesRead(BaseModel):
    """A user's preferences (the defaults until they change one)."""

    default_region: str | None  # a region's code
    timezone: str
    locale: str
    notify_email: bool
    notify_in_app: bool
    updated_at: datetime | None  # None: never changed


class PreferencesUpdate(BaseModel):
    """A change: only the fields given are changed; `default_region` null clears it."""

    default_region: str | None = Field(default=None, min_length=1, max_length=50,
                                       description="A region's code, or null for none.")
    timezone: str | None = Field(default=None, min_length=1, max_length=64, description="An IANA time zone name.")
    locale: str | None = Field(default=None, pattern=LOCALE_PATTERN, max_length=35,
                               description='A BCP 47 language tag: "en", "de-DE", "zh-Hant-TW".')
    notify_email: bool | None = None
    notify_in_app: bool | None = None


class SettingsRead(BaseModel):
    """The settings view: the user's preferences and the SSH keys of the project they act in."""

    project_id: int
    preferences: PreferencesRead
    ssh_keys: list[SshKeyRead]
