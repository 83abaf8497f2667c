"""Shardlyn surface: settings and SSH keys at /v1/settings.

    GET    /v1/settings                          the caller's preferences and their organization's SSH keys
    PUT    /v1/settings                          {"default_region", "timezone", "locale", "notify_email",
                                                 "notify_in_app"}, each optional (only those given change;
                                                 "default_region": null clears it) -> the settings
    POST   /v1/settings/ssh-keys                 {"name", "public_key", "is_default"} -> 201 the key
    DELETE /v1/settings/ssh-keys/{name}          204
    POST   /v1/settings/ssh-keys/{name}/default  the key, now the default

Preferences are the user's own, the same in every organization. The keys are the organization's (the one the
credential acts in): the same keys /api/ssh-keys lists and every order may name, so a name must be unique here
(409) and a name that several keys added elsewhere share is refused (409) rather than guessed. The default key
is what a new server gets when its order names no key. Bad input is a 400 in Shardlyn's format.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, Field

from cloudlet.auth.caller import Caller
from cloudlet.instances import service as instances
from cloudlet.instances.schemas import SshKeyCreate, SshKeyRead
from cloudlet.kit.serial import IsoSeconds
from cloudlet.preferences import service as preferences
from cloudlet.preferences.schemas import PreferencesUpdate, SettingsRead
from cloudlet.surfaces.deps import DbSession, requires
from cloudlet.tokens.abilities import Ability

router = APIRouter(prefix="/v1/settings", tags=["shardlyn"])

Reader = Annotated[Caller, requires(Ability.ACCOUNT_READ)]
Writer = Annotated[Caller, requires(Ability.ACCOUNT_WRITE)]
KeyName = Annotated[str, Path(min_length=1, max_length=200, description="The key's name.")]


class ShardlynSshKeyCreate(SshKeyCreate):
    """POST /v1/settings/ssh-keys."""

    is_default: bool = Field(default=False, description="Make it the key new servers get when none is named.")


class ShardlynSshKey(BaseModel):
    """A kept SSH key."""

    id: str
    name: str
    public_key: str
    fingerprint: str
    is_default: bool
    created_at: IsoSeconds

    @classmethod
    def of(cls, key: SshKeyRead) -> ShardlynSshKey:
        """Render a key."""
        return cls(id=str(key.id), name=key.name, public_key=key.public_key, fingerprint=key.fingerprint,
                   is_default=key.is_default, created_at=key.created_at)


class ShardlynSettings(BaseModel):
    """The settings page."""

    organization_id: str
    default_region: str | None
    timezone: str
    locale: str
    notify_email: bool
    notify_in_app: bool
    updated_at: IsoSeconds | None
    ssh_keys: list[ShardlynSshKey]
    default_ssh_key: str | None  # the default key's name

    @classmethod
    def of(cls, found: SettingsRead) -> ShardlynSettings:
        """Render the settings view."""
        mine = found.preferences
        default = next((k.name for k in found.ssh_keys if k.is_default), None)
        return cls(organization_id=str(found.project_id), default_region=mine.default_region,
                   timezone=mine.timezone, locale=mine.locale, notify_email=mine.notify_email,
                   notify_in_app=mine.notify_in_app, updated_at=mine.updated_at,
                   ssh_keys=[ShardlynSshKey.of(k) for k in found.ssh_keys], default_ssh_key=default)


@router.get("", response_model=ShardlynSettings, summary="Get settings")
def get_settings(caller: Reader, db: DbSession) -> ShardlynSettings:
    """The caller's preferences and the SSH keys of the organization they act in."""
    return ShardlynSettings.of(preferences.settings_of(db, caller, caller.project_id))


@router.put("", response_model=ShardlynSettings, summary="Update settings")
def update_settings(body: PreferencesUpdate, caller: Writer, db: DbSession) -> ShardlynSettings:
    """Change the preferences given; an unknown time zone or region is refused and nothing changes."""
    return ShardlynSettings.of(preferences.update_settings(db, caller, caller.project_id, body))


@router.post("/ssh-keys", status_code=201, response_model=ShardlynSshKey, summary="Add SSH key")
def add_ssh_key(body: ShardlynSshKeyCreate, caller: Writer, db: DbSession) -> ShardlynSshKey:
    """Keep an OpenSSH public key under a name new to the organization."""
    return ShardlynSshKey.of(instances.add_ssh_key(db, caller, body, actor_project=caller.project_id,
                                                   unique_name=True, make_default=body.is_default))


@router.delete("/ssh-keys/{name}", status_code=204, summary="Remove SSH key")
def remove_ssh_key(name: KeyName, caller: Writer, db: DbSession) -> Response:
    """Forget the key of this name; servers built with it keep it."""
    instances.delete_ssh_key_named(db, caller, caller.project_id, name)
    return Response(status_code=204)


@router.post("/ssh-keys/{name}/default", response_model=ShardlynSshKey, summary="Set default key")
def set_default_ssh_key(name: KeyName, caller: Writer, db: DbSession) -> ShardlynSshKey:
    """Make the key of this name the one new servers get when their order names none."""
    return ShardlynSshKey.of(instances.set_default_ssh_key(db, caller, caller.project_id, name))
