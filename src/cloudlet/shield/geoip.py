"""Where a source address is: its country and its autonomous system, from the MMDB files the operator points
Cloudlet at (CLOUDLET_GEOIP_COUNTRY_DB, CLOUDLET_GEOIP_ASN_DB: MaxMind GeoLite2 or DB-IP lite, read with
maxminddb). Both vendors' layouts are read: `country.iso_code` and `country.names.en`, and
`autonomous_system_number` with `autonomous_system_organization`.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, NamedTuple

import maxminddb

from cloudlet.kit.errors import NotConfigured, Unavailable


class Country(NamedTuple):
    """An ISO 3166 country."""

    code: str
    name: str


class AutonomousSystem(NamedTuple):
    """An autonomous system."""

    number: int
    name: str


_readers: dict[tuple[Path, float], maxminddb.Reader] = {}
_guard = threading.Lock()


def _reader(path: Path | None, what: str, setting: str) -> maxminddb.Reader:
    if path is None:
        raise NotConfigured(f"No {what} database is configured: the operator sets {setting} to an MMDB file "
                          "(MaxMind GeoLite2 or DB-IP lite).", code="GEOIP_NOT_CONFIGURED")
    try:
        key = (path, path.stat().st_mtime)  # a file replaced by a newer edition is opened again
        with _guard:
            if key not in _readers:
                _readers[key] = maxminddb.open_database(str(path))
            return _readers[key]
    except (OSError, maxminddb.InvalidDatabaseError) as error:
        raise Unavailable(f"The {what} database {path} cannot be read: {error}",
                          code="GEOIP_UNREADABLE") from None


def _record(reader: maxminddb.Reader, address: str) -> dict[str, Any]:
    try:
        found = reader.get(address)
    except ValueError:  # not an address, or an IPv6 one in an IPv4-only file
        return {}
    return found if isinstance(found, dict) else {}


class GeoIp:
    """Lookups in the configured databases: a view that needs one that is not configured is NotConfigured (501),
    one that cannot be read Unavailable (503)."""

    def __init__(self, country_db: Path | None, asn_db: Path | None) -> None:
        self._country_db, self._asn_db = country_db, asn_db

    def countries(self) -> CountryLookup:
        """The country database."""
        return CountryLookup(_reader(self._country_db, "country", "CLOUDLET_GEOIP_COUNTRY_DB"))

    def systems(self) -> SystemLookup:
        """The ASN database."""
        return SystemLookup(_reader(self._asn_db, "ASN", "CLOUDLET_GEOIP_ASN_DB"))

    def country_of(self, address: str) -> Country | None:
        """The address's country, when a database is configured and knows it."""
        return self.countries().of(address) if self._country_db is not None else None

    def system_of(self, address: str) -> AutonomousSystem | None:
        """The address's autonomous system, when a database is configured and knows it."""
        return self.systems().of(address) if self._asn_db is not None else None


class CountryLookup(NamedTuple):
    """Countries from one database."""

    reader: maxminddb.Reader

    def of(self, address: str) -> Country | None:
        """The address's country; None when the database does not know it."""
        country = _record(self.reader, address).get("country") or {}
        code = country.get("iso_code")
        return Country(str(code), str((country.get("names") or {}).get("en", code))) if code else None


class SystemLookup(NamedTuple):
    """Autonomous systems from one database."""

    reader: maxminddb.Reader

    def of(self, address: str) -> AutonomousSystem | None:
        """The address's autonomous system; None when the database does not know it."""
        found = _record(self.reader, address)
        number = found.get("autonomous_system_number")
        return AutonomousSystem(int(number), str(found.get("autonomous_system_organization", ""))) \
            if number is not None else None
