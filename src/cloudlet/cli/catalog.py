"""`cloudlet catalog`: load a catalogue file into the database, and show what is on sale."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from cloudlet import catalogue_file
from cloudlet.app import build_runtime
from cloudlet.billing import pricing
from cloudlet.catalog import service as catalog
from cloudlet.config import Settings
from cloudlet.kit import migrate as migrations
from cloudlet.kit.db import Database
from cloudlet.kit.errors import CloudletError
from cloudlet.networking import service as networking

app = typer.Typer(help="Plans, regions, billing cycles, exchange rates, OS templates and IP pools.",
                  no_args_is_help=True)


def _database() -> Database:
    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = build_runtime(settings).db
    migrations.upgrade(db.engine)  # loading may come before the first `serve`
    return db


def seed_default(db: Database) -> bool:
    """Put the default catalogue into an empty database (first start); whether it did."""
    with db.session() as session:
        return catalogue_file.seed_default(session) is not None


@app.command("load")
def load(file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True,
                                     help="A YAML catalogue: regions, categories, plans, cycles, rates, "
                                          "templates, pools.")) -> None:
    """Create or update every entry of a catalogue file by its code (pools by CIDR); safe to run again."""
    db = _database()
    try:
        with db.session() as session:
            parsed = catalogue_file.parse_catalogue(file.read_text(encoding="utf-8"))
            report = catalogue_file.load_catalogue(session, parsed)
    except CloudletError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from None
    except ValueError as exc:  # pydantic's ValidationError: the file's shape is wrong
        typer.echo(f"error: {file} is not a valid catalogue:\n{exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        db.dispose()
    sections = sorted(set(report.created) | set(report.updated))
    summary = ", ".join(f"{s} {report.created.get(s, 0)} created / {report.updated.get(s, 0)} updated"
                        for s in sections)
    typer.echo(f"catalogue loaded: {summary or 'nothing to do'}")


@app.command("show")
def show(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables.")) -> None:
    """Print the catalogue: regions, plans with prices, billing cycles, rates, templates and IP pools."""
    db = _database()
    try:
        with db.session(write=False) as session:
            regions = networking.list_regions(session)
            plans = catalog.list_plans(session)
            cycles = catalog.list_cycles(session)
            rates = pricing.list_rates(session)
            templates = catalog.list_templates(session)
            pools = networking.list_pools(session)
    finally:
        db.dispose()
    if as_json:
        typer.echo(json.dumps({
            "regions": [r.model_dump(mode="json") for r in regions],
            "plans": [p.model_dump(mode="json") for p in plans],
            "billing_cycles": [c.model_dump(mode="json") for c in cycles],
            "exchange_rates": [r.model_dump(mode="json") for r in rates],
            "os_templates": [t.model_dump(mode="json") for t in templates],
            "ip_pools": [p.model_dump(mode="json") for p in pools],
        }, indent=2, ensure_ascii=False))
        return
    console = Console()
    table = Table("code", "name", "country", "flag", "available", "free IPv4", title="Regions")
    for r in regions:
        table.add_row(r.code, r.name, r.country, r.flag, "yes" if r.is_available else "no", str(r.available_ips))
    console.print(table)
    table = Table("id", "code", "category", "vCPU", "RAM MB", "disk GB", "bw GB", "USD/month", "USD/hour", "regions",
                  "active", title="Plans")
    for p in plans:
        table.add_row(str(p.id), p.code, p.category, str(p.vcpu), str(p.ram_mb), str(p.disk_gb), str(p.bandwidth_gb),
                      p.monthly_price, p.hourly_price, ",".join(p.regions), "yes" if p.is_active else "no")
    console.print(table)
    table = Table("code", "name", "months", "discount bps", "active", title="Billing cycles")
    for c in cycles:
        table.add_row(c.code, c.name, str(c.months), str(c.discount_bps), "yes" if c.is_active else "no")
    console.print(table)
    table = Table("currency", "per USD", "source", "fetched at", title="Exchange rates")
    for rate in rates:
        table.add_row(rate.currency, str(rate.rate), rate.source,
                      rate.fetched_at.isoformat(timespec="seconds") if rate.fetched_at else "-")
    console.print(table)
    table = Table("id", "code", "family", "name", "windows", "min balance USD", "image", title="OS templates")
    for t in templates:
        table.add_row(str(t.id), t.code, t.family, t.name, "yes" if t.is_windows else "no", t.min_balance,
                      str(t.image_id) if t.image_id else "-")
    console.print(table)
    table = Table("id", "region", "cidr", "gateway", "usable", "reserved", "allocated", "available", title="IP pools")
    for pool in pools:
        table.add_row(str(pool.id), pool.region, pool.cidr, pool.gateway or "-", str(pool.usable),
                      str(pool.reserved_count), str(pool.allocated), str(pool.available))
    console.print(table)
