"""Reading and changing a user's preferences, and the settings view around them.

Preferences are the user's own (the same in every project they work in); the SSH keys shown with them are the
project's, kept by the instances domain: the one key store every surface and every build reads.
"""

from __future__ import annotations

import zoneinfo
from functools import lru_cache

from sqlalchemy.orm import Session

from cloudlet.catalog import service as catalog
from cloudlet.instances import service as instances
from cloudlet.kit import clock, locks
from cloudlet.kit.errors import Invalid
from cloudlet.preferences import repository
from cloudlet.preferences.models import DEFAULT_LOCALE, DEFAULT_TIMEZONE, UserPreferences
from cloudlet.preferences.schemas import PreferencesRead, PreferencesUpdate, SettingsRead
from cloudlet.projects import service as projects
from cloudlet.projects.schemas import Actor


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    # the names the system's zone database knows; looked up by name, never opened as a path
    return frozenset(zoneinfo.available_timezones()) | {DEFAULT_TIMEZONE}


def _read(session: Session, row: UserPreferences | None) -> PreferencesRead:
    if row is None:
        return PreferencesRead(default_region=None, timezone=DEFAULT_TIMEZONE, locale=DEFAULT_LOCALE,
                               notify_email=True, notify_in_app=True, updated_at=None)
    region = catalog.get_region(session, row.default_region_id).code if row.default_region_id is not None else None
    return PreferencesRead(default_region=region, timezone=row.timezone, locale=row.locale,
                           notify_email=row.notify_email, notify_in_app=row.notify_in_app, updated_at=row.updated_at)


def preferences_of(session: Session, user_id: int) -> PreferencesRead:
    """A user's preferences; the defaults (UTC, "en", every notification on) until they change one."""
    return _read(session, repository.get(session, user_id))


def update_preferences(session: Session, user_id: int, data: PreferencesUpdate) -> PreferencesRead:
    """Change the fields given, all or nothing: an unknown time zone or a region that cannot be ordered is a 422."""
    given = data.model_fields_set
    region_id: int | None = None
    if "default_region" in given and data.default_region is not None:
        region = catalog.find_region(session, data.default_region, "default_region")
        if not region.is_available:
            raise Invalid("default_region", f"Region {region.code!r} does not take new servers.",
                          code="LOCATION_NOT_FOUND")
        region_id = region.id
    if data.timezone is not None and data.timezone not in _zones():
        raise Invalid("timezone", f"There is no time zone {data.timezone!r}; use an IANA name like Europe/Paris.")
    locks.hold(session, f"preferences:{user_id}")  # two first changes at once cannot both insert the row
    row = repository.get(session, user_id)
    if row is None:
        row = repository.insert(session, UserPreferences(user_id=user_id, timezone=DEFAULT_TIMEZONE,
                                                         locale=DEFAULT_LOCALE, notify_email=True,
                                                         notify_in_app=True, updated_at=clock.now()))
    if "default_region" in given:
        row.default_region_id = region_id
    # a field sent as null (other than default_region) means "leave it": none of them can be empty
    if data.timezone is not None:
        row.timezone = data.timezone
    if data.locale is not None:
        row.locale = data.locale
    if data.notify_email is not None:
        row.notify_email = data.notify_email
    if data.notify_in_app is not None:
        row.notify_in_app = data.notify_in_app
    row.updated_at = clock.now()
    session.flush()
    return _read(session, row)


def settings_of(session: Session, actor: Actor, project_id: int) -> SettingsRead:
    """The settings view: the actor's preferences and the keys of a project they are a member of."""
    projects.require_membership(session, actor.user_id, project_id, fence=actor.project_scope)
    return SettingsRead(project_id=project_id, preferences=preferences_of(session, actor.user_id),
                        ssh_keys=instances.list_ssh_keys(session, actor, project_id))


def update_settings(session: Session, actor: Actor, project_id: int, data: PreferencesUpdate) -> SettingsRead:
    """Change the actor's preferences and show the settings view as it now stands."""
    projects.require_membership(session, actor.user_id, project_id, fence=actor.project_scope)
    update_preferences(session, actor.user_id, data)
    return settings_of(session, actor, project_id)
