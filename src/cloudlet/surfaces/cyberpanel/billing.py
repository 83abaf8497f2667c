"""CyberPanel surface: Get Account Info (/api/v1/account) and Get Billing Info (/api/v1/billing).

Money is shown as decimal strings ("150.00"); a ledger entry is an "invoice" with a signed amount.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel

from cloudlet.auth.caller import Caller
from cloudlet.billing import service as billing
from cloudlet.kit import money
from cloudlet.kit.serial import IsoSeconds
from cloudlet.surfaces.cyberpanel.errors import envelope
from cloudlet.surfaces.deps import AppSettings, DbSession, requires
from cloudlet.tokens.abilities import Ability

router = APIRouter(prefix="/api/v1", tags=["cyberpanel"])


class CpAccount(BaseModel):
    """The reference's account fields, exactly."""

    id: int
    email: str
    full_name: str
    balance: str
    status: str
    two_factor_enabled: bool
    vps_ordering_enabled: bool
    registration_date: IsoSeconds


class CpAutoFunding(BaseModel):
    """Auto-funding settings of the wallet."""

    enabled: bool
    threshold: str
    amount: str


class CpInvoice(BaseModel):
    """A ledger entry as CyberPanel lists it."""

    id: int
    description: str
    amount: str
    type: str
    date: IsoSeconds


class CpBilling(BaseModel):
    """The reference's billing fields, exactly."""

    balance: str
    auto_funding: CpAutoFunding
    recent_invoices: list[CpInvoice]


@router.get("/account", summary="Get Account Info")
def account(caller: Annotated[Caller, requires(Ability.ACCOUNT_READ)], db: DbSession,
            settings: AppSettings) -> dict[str, Any]:
    """The caller's account and wallet balance."""
    found = billing.account(db, settings, caller)
    data = CpAccount(id=found.id, email=found.email, full_name=found.full_name,
                     balance=money.format_amount(found.balance_cents, found.currency),
                     status="active" if found.active else "suspended", two_factor_enabled=found.two_factor_enabled,
                     vps_ordering_enabled=found.active, registration_date=found.registration_date)
    return envelope(data.model_dump(mode="json"))


@router.get("/billing", summary="Get Billing Info")
def billing_info(caller: Annotated[Caller, requires(Ability.WALLET_READ)], db: DbSession,
                 settings: AppSettings) -> dict[str, Any]:
    """Balance, auto-funding settings and the newest ledger entries."""
    found = billing.overview(db, settings, caller)
    wallet, currency = found.wallet, found.wallet.currency
    data = CpBilling(
        balance=money.format_amount(wallet.balance_cents, currency),
        auto_funding=CpAutoFunding(enabled=wallet.auto_funding_enabled,
                                   threshold=money.format_amount(wallet.auto_funding_threshold_cents, currency),
                                   amount=money.format_amount(wallet.auto_funding_amount_cents, currency)),
        recent_invoices=[CpInvoice(id=e.id, description=e.description, type=e.type.value, date=e.created_at,
                                   amount=money.format_amount(e.amount_cents, currency)) for e in found.recent],
    )
    return envelope(data.model_dump(mode="json"))
