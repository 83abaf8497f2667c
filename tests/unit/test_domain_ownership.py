"""Each domain owns its tables: the catalogue is the lower domain, networking (IP pools) and billing
(exchange rates, project prices, pricing) reach it only through its service, and it reaches neither."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "cloudlet"


def _imports(domain: str) -> set[str]:
    found: set[str] = set()
    for path in (SRC / domain).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
    return found


def test_the_catalogue_imports_neither_networking_nor_billing() -> None:
    reached = {m for m in _imports("catalog") if m.startswith(("cloudlet.networking", "cloudlet.billing"))}
    assert reached == set()


@pytest.mark.parametrize("domain", ["networking", "billing"])
def test_higher_domains_use_the_catalogue_only_through_its_service_and_schemas(domain: str) -> None:
    allowed = ("cloudlet.catalog.service", "cloudlet.catalog.schemas", "cloudlet.catalog.defaults")
    reached = {m for m in _imports(domain) if m.startswith("cloudlet.catalog.")}
    assert reached and {m for m in reached if not m.startswith(allowed)} == set()


def test_pools_rates_and_project_prices_are_declared_by_their_owners() -> None:
    from cloudlet.billing.models import ExchangeRate, ProjectPrice
    from cloudlet.networking.models import IpAllocation, IpPool

    assert (IpPool.__tablename__, IpAllocation.__tablename__) == ("ip_pools", "ip_allocations")
    assert (ExchangeRate.__tablename__, ProjectPrice.__tablename__) == ("exchange_rates", "project_prices")
    catalog_models = (SRC / "catalog" / "models.py").read_text(encoding="utf-8")
    for table in ("ip_pools", "ip_allocations", "exchange_rates", "project_prices"):
        assert f'"{table}"' not in catalog_models


def test_imports_go_from_instances_to_backups_never_back() -> None:
    imported = _imports("backups")
    assert "cloudlet.backups.models" in imported  # the walk did read the backups package
    reached = {m for m in imported if m == "cloudlet.instances" or m.startswith("cloudlet.instances.")}
    assert reached == set()
