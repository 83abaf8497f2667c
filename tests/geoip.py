"""Small GeoIP databases of documentation ranges, written as real MMDB files (GeoLite2's layout) for the
visibility views."""

from __future__ import annotations

from pathlib import Path

from mmdb_writer import MMDBWriter
from netaddr import IPSet

COUNTRIES = {"198.51.100.0/24": ("NL", "Netherlands"), "203.0.113.0/24": ("JP", "Japan"),
             "2001:db8::/32": ("DE", "Germany")}
SYSTEMS = {"198.51.100.0/24": (64500, "Example Transit"), "203.0.113.0/24": (64501, "Example Hosting")}


def write_databases(directory: Path) -> tuple[Path, Path]:
    """The country and the ASN database; 192.0.2.0/24 is in neither."""
    countries = MMDBWriter(ip_version=6, database_type="GeoLite2-Country", ipv4_compatible=True)
    for network, (code, name) in COUNTRIES.items():
        countries.insert_network(IPSet([network]), {"country": {"iso_code": code, "names": {"en": name}}})
    systems = MMDBWriter(ip_version=6, database_type="GeoLite2-ASN", ipv4_compatible=True)
    for network, (number, name) in SYSTEMS.items():
        systems.insert_network(IPSet([network]), {"autonomous_system_number": number,
                                                  "autonomous_system_organization": name})
    country_db, asn_db = directory / "country.mmdb", directory / "asn.mmdb"
    countries.to_db_file(str(country_db))
    systems.to_db_file(str(asn_db))
    return country_db, asn_db
