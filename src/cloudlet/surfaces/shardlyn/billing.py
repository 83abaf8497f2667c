"""Shardlyn surface: the organisation's usage and limits, and operators' wallet credits.

The reference lists /v1/billing/org/usage and /v1/billing/org/limits without shapes; an
"organisation" is the caller's default project, and amounts are integer cents. Operators
credit any project's wallet at /v1/admin/wallets/{projectId}/credits (Idempotency-Key honoured).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response
from pydantic import BaseModel

from cloudlet.auth.caller import Caller
from cloudlet.billing import service as billing
from cloudlet.billing.schemas import CreditCreate, EntryRead, UsageRead, WalletRead
from cloudlet.surfaces.deps import AdminCaller, AppSettings, DbSession, requires
from cloudlet.surfaces.idempotency import IdempotencyGuard
from cloudlet.surfaces.params import PathId
from cloudlet.tokens.abilities import Ability

router = APIRouter(tags=["shardlyn"])

WalletReader = Annotated[Caller, requires(Ability.WALLET_READ)]


class LimitsRead(BaseModel):
    """What bounds the organisation's spending."""

    organization_id: int
    currency: str
    balance_cents: int
    overdraft_limit_cents: int  # always 0: the wallet is prepaid and never overdrawn
    spendable_cents: int
    low_balance_threshold_cents: int | None
    auto_funding_enabled: bool

    @classmethod
    def of(cls, wallet: WalletRead) -> LimitsRead:
        """Limits of a wallet."""
        return cls(organization_id=wallet.project_id, currency=wallet.currency, balance_cents=wallet.balance_cents,
                   overdraft_limit_cents=0, spendable_cents=wallet.balance_cents,
                   low_balance_threshold_cents=wallet.low_balance_threshold_cents,
                   auto_funding_enabled=wallet.auto_funding_enabled)


class UsageOut(UsageRead):
    """This month's usage of the organisation."""

    organization_id: int


@router.get("/v1/billing/org/usage", response_model=UsageOut, summary="Resource usage")
def org_usage(caller: WalletReader, db: DbSession, settings: AppSettings) -> UsageOut:
    """This calendar month's debits and credits, balance and subscriptions."""
    found = billing.usage(db, settings, caller)
    return UsageOut(organization_id=found.project_id, **found.model_dump())


@router.get("/v1/billing/org/limits", response_model=LimitsRead, summary="Plan limits")
def org_limits(caller: WalletReader, db: DbSession, settings: AppSettings) -> LimitsRead:
    """What the organisation may spend."""
    return LimitsRead.of(billing.wallet(db, settings, caller))


@router.get("/v1/admin/wallets/{project_id}", response_model=WalletRead, summary="A project's wallet (admin)")
def admin_wallet(project_id: PathId, caller: AdminCaller, db: DbSession, settings: AppSettings) -> WalletRead:
    """Any project's wallet and balance."""
    return billing.project_wallet(db, settings, project_id)


@router.post("/v1/admin/wallets/{project_id}/credits", status_code=201, response_model=EntryRead,
             summary="Credit a project's wallet (admin)")
def admin_credit(project_id: PathId, body: CreditCreate, caller: AdminCaller, db: DbSession, settings: AppSettings,
                 idem: IdempotencyGuard) -> Response:
    """Post an operator's credit; a retry with the same Idempotency-Key returns the first answer."""
    return idem.run(body, lambda: billing.admin_credit(
        db, settings, project_id, body, actor=caller.user,
        key=f"admin_credit:{idem.operation_key}" if idem.operation_key else None), status_code=201)
