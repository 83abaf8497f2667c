"""Primary surface: the wallet (Evorxa "Wallet & Billing"): balance, ledger, settings and top-ups.

The wallet of the caller's default project is used unless `project_id` names another project
the caller is in (another project answers 404). Amounts are integer cents.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Query, Response

from cloudlet.auth.caller import Caller
from cloudlet.billing import service as billing
from cloudlet.billing.models import EntryType
from cloudlet.billing.payments import default_provider
from cloudlet.billing.schemas import TopUpCreate, WalletUpdate
from cloudlet.kit.ids import MAX_ID
from cloudlet.surfaces.deps import AppSettings, DbSession, requires
from cloudlet.surfaces.idempotency import IdempotencyGuard
from cloudlet.surfaces.params import Offset
from cloudlet.surfaces.primary.billing_schemas import (
    BalanceRead,
    PrimaryTopUpRead,
    PrimaryWalletRead,
    TransactionList,
)
from cloudlet.tokens.abilities import Ability

router = APIRouter(prefix="/api/wallet", tags=["primary"])

WalletReader = Annotated[Caller, requires(Ability.WALLET_READ)]
WalletWriter = Annotated[Caller, requires(Ability.WALLET_WRITE)]
ProjectParam = Annotated[int | None, Query(ge=1, le=MAX_ID,
                                           description="A project you belong to; default: your default project.")]


@router.get("/balance", response_model=BalanceRead, summary="Wallet balance in cents and in dollars")
def balance(caller: WalletReader, db: DbSession, settings: AppSettings, project_id: ProjectParam = None) -> Response:
    """The balance; balance_usd is written from the exact decimal ("52.40"), never through a float."""
    found = billing.wallet(db, settings, caller, project_id)
    body = f'{{"balance_cents": {json.dumps(found.balance_cents)}, "balance_usd": {found.balance}}}'
    return Response(content=body, media_type="application/json")


@router.get("/transactions", response_model=TransactionList, summary="Paginated transaction ledger, newest first")
def transactions(caller: WalletReader, db: DbSession, settings: AppSettings,
                 type: Annotated[EntryType | None, Query(description='"debit" or "credit"; both when absent.')] = None,
                 limit: Annotated[int, Query(ge=1, le=200)] = 50,
                 offset: Offset = 0,
                 project_id: ProjectParam = None) -> TransactionList:
    """A page of the wallet's ledger entries."""
    return TransactionList.of(billing.transactions(db, settings, caller, type_=type, limit=limit, offset=offset,
                                                   project_id=project_id))


@router.get("", response_model=PrimaryWalletRead, summary="The wallet with its low-balance and auto-funding settings")
def show(caller: WalletReader, db: DbSession, settings: AppSettings,
         project_id: ProjectParam = None) -> PrimaryWalletRead:
    """The wallet and its settings."""
    return PrimaryWalletRead.of(billing.wallet(db, settings, caller, project_id))


@router.patch("", response_model=PrimaryWalletRead, summary="Change the low-balance threshold or auto-funding")
def update(body: WalletUpdate, caller: WalletWriter, db: DbSession, settings: AppSettings,
           project_id: ProjectParam = None) -> PrimaryWalletRead:
    """Change wallet settings (owners, or members allowed to add funds)."""
    return PrimaryWalletRead.of(billing.update_wallet(db, settings, caller, body, project_id))


@router.post("/top-up", status_code=201, response_model=PrimaryTopUpRead,
             summary="Add funds through the payment provider (honours Idempotency-Key)")
def top_up(body: TopUpCreate, caller: WalletWriter, db: DbSession, settings: AppSettings, idem: IdempotencyGuard,
           project_id: ProjectParam = None) -> Response:
    """Collect the amount and credit it; a retry with the same Idempotency-Key returns the first answer."""
    return idem.run(body, lambda: PrimaryTopUpRead.of(billing.top_up(
        db, settings, default_provider(), caller, body, key=idem.operation_key, project_id=project_id)),
        status_code=201)
