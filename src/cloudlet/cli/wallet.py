"""`cloudlet wallet ...` and `cloudlet billing ...`: operator commands on wallets and billing runs."""

from __future__ import annotations

import json
from datetime import timedelta

import typer

from cloudlet.app import build_runtime
from cloudlet.auth import service as auth
from cloudlet.billing import jobs
from cloudlet.billing import service as billing
from cloudlet.billing.models import Pool
from cloudlet.billing.schemas import CreditCreate, RunReport
from cloudlet.config import Settings
from cloudlet.kit import clock
from cloudlet.kit.errors import CloudletError, NotFound
from cloudlet.surfaces import idempotency

wallet_app = typer.Typer(help="Project wallets.", no_args_is_help=True)
billing_app = typer.Typer(help="The billing engine.", no_args_is_help=True)


def _settings() -> Settings:
    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings


@wallet_app.command("credit")
def credit(
    email: str = typer.Argument(..., help="The user whose personal project's wallet is credited."),
    amount_cents: int = typer.Argument(..., help="Amount in minor units (cents)."),
    reason: str = typer.Option("", "--reason", help="Why; shown in the ledger."),
    agent: bool = typer.Option(False, "--agent", help="Credit the AI agent's credit pool instead of the wallet."),
) -> None:
    """Credit a user's personal project wallet (or its AI agent credit pool)."""
    settings = _settings()
    runtime = build_runtime(settings)
    try:
        data = CreditCreate(amount_cents=amount_cents, reason=reason, pool=Pool.AGENT if agent else Pool.MAIN)
        with runtime.db.session() as session:
            user = auth.find_user_by_email(session, email)
            if user is None:
                raise NotFound("user", email)
            entry = billing.credit_user(session, settings, user, data)
    except CloudletError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from None
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        runtime.db.dispose()
    typer.echo(f"credited {amount_cents} to wallet {entry.wallet_id}; balance is now {entry.balance_after_cents}")


@billing_app.command("run")
def run(as_json: bool = typer.Option(False, "--json", help="Print the report as JSON.")) -> None:
    """Run the renewals and hourly charges due now, once, and forget expired Idempotency-Keys."""
    settings = _settings()
    runtime = build_runtime(settings)
    now = clock.now()
    try:
        renewals = jobs.run_renewals(runtime.db, settings, now)
        hours = jobs.run_hourly(runtime.db, settings, now)
        with runtime.db.session() as session:
            purged = idempotency.purge(session, now - timedelta(hours=settings.idempotency_key_hours))
    finally:
        runtime.db.dispose()
    total = RunReport(renewed=renewals.renewed, ended=renewals.ended + hours.ended, hours_charged=hours.hours_charged,
                      in_grace=renewals.in_grace + hours.in_grace, suspended=renewals.suspended + hours.suspended)
    if as_json:
        typer.echo(json.dumps({**total.model_dump(), "idempotency_keys_purged": purged}))
        return
    typer.echo(f"renewed {total.renewed}, hours charged {total.hours_charged}, ended {total.ended}, "
               f"in grace {total.in_grace}, suspended {total.suspended}, idempotency keys purged {purged}")
