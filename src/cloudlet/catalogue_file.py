"""The operator's catalogue file: one YAML over three domains, each part loaded through its own service.

The catalogue's entries (regions, categories, plans, cycles, templates) are upserted by code, billing's
exchange rates by currency, networking's IP pools by CIDR. Like app.py this sits above the domains
and only composes them, so none of the three has to know the others' parts of the file.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field
from sqlalchemy.orm import Session

from cloudlet.billing import pricing
from cloudlet.catalog import service as catalog
from cloudlet.catalog.schemas import CatalogueFile, Currency, LoadReport
from cloudlet.networking import service as networking
from cloudlet.networking.defaults import DEFAULT_POOLS
from cloudlet.networking.schemas import PoolEntry

# placeholders dated at first start, to be replaced with real rates
DEFAULT_RATES = {"SAR": Decimal("3.75"), "EGP": Decimal("48.50"), "NOK": Decimal("10.80")}
DEFAULT_RATE_SOURCE = "default catalogue placeholder; set real rates"


class FullCatalogue(CatalogueFile):
    """A catalogue file as an operator writes it: every section optional."""

    rates: dict[Currency, Decimal] = Field(default_factory=dict)
    pools: list[PoolEntry] = Field(default_factory=list)


def parse_catalogue(text: str) -> FullCatalogue:
    """A catalogue file's YAML, checked; Invalid with the first problem."""
    return catalog.parse_catalogue(text, FullCatalogue)


def load_catalogue(session: Session, catalogue: FullCatalogue, *, rate_source: str = "catalogue file") -> LoadReport:
    """Create or update every entry of a catalogue file (pools by CIDR); loading twice changes nothing."""
    report = catalog.load_catalogue(session, catalogue)
    pricing.load_rates(session, dict(catalogue.rates), report, source=rate_source)
    networking.load_pools(session, catalogue.pools, report)
    return report


def seed_default(session: Session) -> LoadReport | None:
    """Load the default catalogue, rates and pool into an empty catalogue, so a new installation can sell at once."""
    report = catalog.seed_default(session)
    if report is None:
        return None
    pricing.load_rates(session, DEFAULT_RATES, report, source=DEFAULT_RATE_SOURCE)
    networking.load_pools(session, DEFAULT_POOLS, report)
    return report
