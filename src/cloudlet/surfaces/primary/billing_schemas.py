"""Primary-surface shapes of the wallet, its ledger, top-ups and quotes."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from cloudlet.billing.models import EntryKind, EntryType
from cloudlet.billing.schemas import EntryRead, QuoteAction, QuoteRead, TopUpRead, TransactionPage, WalletRead
from cloudlet.kit.ids import Id
from cloudlet.kit.serial import IsoMillis


class BalanceRead(BaseModel):
    """The documented balance shape (balance_usd is a JSON number with two decimals)."""

    balance_cents: int
    balance_usd: float


class TransactionRead(BaseModel):
    """One ledger entry: amount_cents is negative for a debit."""

    id: int
    type: EntryType
    kind: EntryKind
    amount_cents: int
    balance_after_cents: int
    description: str
    reference: str | None
    created_at: IsoMillis

    @classmethod
    def of(cls, entry: EntryRead) -> TransactionRead:
        """Render a ledger entry."""
        return cls(id=entry.id, type=entry.type, kind=entry.kind, amount_cents=entry.amount_cents,
                   balance_after_cents=entry.balance_after_cents, description=entry.description,
                   reference=entry.reference, created_at=entry.created_at)


class TransactionList(BaseModel):
    """A page of the ledger."""

    data: list[TransactionRead]
    total: int
    limit: int
    offset: int
    has_more: bool

    @classmethod
    def of(cls, page: TransactionPage) -> TransactionList:
        """Render a page."""
        return cls(data=[TransactionRead.of(e) for e in page.items], total=page.total, limit=page.limit,
                   offset=page.offset, has_more=page.offset + len(page.items) < page.total)


class PrimaryWalletRead(BaseModel):
    """The wallet with its settings."""

    project_id: int
    currency: str
    balance_cents: int
    low_balance_threshold_cents: int | None
    auto_funding_enabled: bool
    auto_funding_threshold_cents: int
    auto_funding_amount_cents: int

    @classmethod
    def of(cls, wallet: WalletRead) -> PrimaryWalletRead:
        """Render a wallet."""
        return cls.model_validate(wallet.model_dump())


class PrimaryTopUpRead(BaseModel):
    """A settled top-up."""

    provider: str
    provider_reference: str
    transaction: TransactionRead
    balance_cents: int

    @classmethod
    def of(cls, top_up: TopUpRead) -> PrimaryTopUpRead:
        """Render a top-up."""
        return cls(provider=top_up.provider, provider_reference=top_up.provider_reference,
                   transaction=TransactionRead.of(top_up.entry), balance_cents=top_up.balance_cents)


class QuoteCreate(BaseModel):
    """What to price: a creation, an upgrade (to_plan_id) or an immediate deletion's refund.

    Name a subscription (what pays for an instance) to price against its real period and payments;
    otherwise the period is a fresh one starting now.
    """

    model_config = ConfigDict(extra="forbid")

    action: QuoteAction
    plan_id: Id | None = None
    cycle: str = Field(default="monthly", min_length=1, max_length=32)
    currency: str | None = Field(default=None, min_length=3, max_length=3)
    to_plan_id: Id | None = None
    subscription_id: Id | None = None
    at: AwareDatetime | None = None  # price as of this moment (default: now)


class PrimaryQuoteRead(BaseModel):
    """A price that changed nothing: positive amount to pay, negative to get back."""

    action: QuoteAction
    currency: str
    amount_cents: int
    amount: str
    period_start: IsoMillis
    period_end: IsoMillis
    balance_cents: int
    sufficient_balance: bool | None

    @classmethod
    def of(cls, quote: QuoteRead, amount: str) -> PrimaryQuoteRead:
        """Render a quote."""
        return cls(amount=amount, **quote.model_dump())
