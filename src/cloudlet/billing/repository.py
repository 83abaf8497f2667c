"""SQL for wallets, ledger entries, subscriptions, exchange rates and project prices."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloudlet.billing.models import (
    HOURLY,
    EntryKind,
    EntryType,
    ExchangeRate,
    LedgerEntry,
    Pool,
    ProjectPrice,
    Subscription,
    SubscriptionStatus,
    Wallet,
)
from cloudlet.kit.ids import in_range


def find_wallet(session: Session, project_id: int, pool: Pool) -> Wallet | None:
    """The project's wallet of a pool, if it exists."""
    return session.scalar(select(Wallet).where(Wallet.project_id == project_id, Wallet.pool == pool))


def insert_wallet_once(session: Session, wallet: Wallet) -> tuple[Wallet, bool]:
    """Insert a wallet, or return the one a concurrent transaction just made; says whether it is new."""
    try:
        with session.begin_nested():
            session.add(wallet)
            session.flush()
        return wallet, True
    except IntegrityError:
        existing = find_wallet(session, wallet.project_id, wallet.pool)
        if existing is None:
            raise
        return existing, False


def lock_wallet(session: Session, wallet_id: int) -> Wallet:
    """The wallet row, locked until the transaction ends (PostgreSQL: FOR UPDATE; SQLite's
    writing transactions already hold the database's write lock from BEGIN IMMEDIATE)."""
    wallet = session.scalar(select(Wallet).where(Wallet.id == wallet_id).with_for_update()
                            .execution_options(populate_existing=True))
    if wallet is None:
        raise LookupError(f"wallet {wallet_id} vanished")
    return wallet


def last_entry(session: Session, wallet_id: int) -> LedgerEntry | None:
    """The wallet's newest entry: one index seek on (wallet_id, seq), however long the ledger."""
    return session.scalar(select(LedgerEntry).where(LedgerEntry.wallet_id == wallet_id)
                          .order_by(LedgerEntry.seq.desc()).limit(1))


def project_balance(session: Session, project_id: int, pool: Pool) -> int | None:
    """The balance of a project's wallet in one query; None when the wallet does not exist yet."""
    row = session.execute(
        select(Wallet.id, LedgerEntry.balance_after_cents)
        .outerjoin(LedgerEntry, LedgerEntry.wallet_id == Wallet.id)
        .where(Wallet.project_id == project_id, Wallet.pool == pool)
        .order_by(LedgerEntry.seq.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    return int(row[1] or 0)


def balance(session: Session, wallet_id: int) -> int:
    """The wallet's balance: its newest entry's balance_after, 0 without entries."""
    value = session.scalar(select(LedgerEntry.balance_after_cents).where(LedgerEntry.wallet_id == wallet_id)
                           .order_by(LedgerEntry.seq.desc()).limit(1))
    return int(value or 0)


def entry_by_key(session: Session, wallet_id: int, key: str) -> LedgerEntry | None:
    """The entry posted under an idempotency key, if any."""
    return session.scalar(select(LedgerEntry).where(LedgerEntry.wallet_id == wallet_id,
                                                    LedgerEntry.idempotency_key == key))


def insert_entry(session: Session, entry: LedgerEntry) -> LedgerEntry:
    """Append an entry and give it its id."""
    session.add(entry)
    session.flush()
    return entry


def entries(session: Session, wallet_id: int, *, type_: EntryType | None, limit: int,
            offset: int) -> list[LedgerEntry]:
    """A page of the wallet's entries, newest first."""
    query = select(LedgerEntry).where(LedgerEntry.wallet_id == wallet_id)
    if type_ is not None:
        query = query.where(LedgerEntry.type == type_)
    return list(session.scalars(query.order_by(LedgerEntry.seq.desc()).limit(limit).offset(offset)))


def count_entries(session: Session, wallet_id: int, *, type_: EntryType | None) -> int:
    """How many entries the wallet has (of one type when given)."""
    query = select(func.count()).select_from(LedgerEntry).where(LedgerEntry.wallet_id == wallet_id)
    if type_ is not None:
        query = query.where(LedgerEntry.type == type_)
    return int(session.scalar(query) or 0)


def sum_amounts(session: Session, wallet_id: int, *, type_: EntryType | None = None,
                kind: EntryKind | None = None, since: datetime | None = None) -> int:
    """SUM(amount_cents) of the wallet's entries, filtered as asked."""
    query = select(func.coalesce(func.sum(LedgerEntry.amount_cents), 0)).where(LedgerEntry.wallet_id == wallet_id)
    if type_ is not None:
        query = query.where(LedgerEntry.type == type_)
    if kind is not None:
        query = query.where(LedgerEntry.kind == kind)
    if since is not None:
        query = query.where(LedgerEntry.created_at >= since)
    return int(session.scalar(query) or 0)


def insert_subscription(session: Session, subscription: Subscription) -> Subscription:
    """Add a subscription and give it its id."""
    session.add(subscription)
    session.flush()
    return subscription


def subscription(session: Session, subscription_id: int, *, lock: bool = False) -> Subscription | None:
    """A subscription by id, locked for the transaction when asked."""
    query = select(Subscription).where(Subscription.id == subscription_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return session.scalar(query)


def subscription_by_reference(session: Session, reference: str) -> Subscription | None:
    """The subscription that pays for a reference (an instance), if any."""
    return session.scalar(select(Subscription).where(Subscription.reference == reference))


def subscriptions_of(session: Session, project_id: int) -> list[Subscription]:
    """A project's subscriptions, newest first."""
    return list(session.scalars(select(Subscription).where(Subscription.project_id == project_id)
                                .order_by(Subscription.id.desc())))


def count_subscriptions(session: Session, project_id: int, status: SubscriptionStatus) -> int:
    """How many of a project's subscriptions are in a status."""
    return int(session.scalar(select(func.count()).select_from(Subscription).where(
        Subscription.project_id == project_id, Subscription.status == status)) or 0)


def due_subscription_ids(session: Session, now: datetime, *, hourly: bool) -> list[int]:
    """Active subscriptions whose billed_till has come (hourly or per cycle)."""
    cycle_filter = Subscription.cycle == HOURLY if hourly else Subscription.cycle != HOURLY
    return list(session.scalars(select(Subscription.id).where(
        Subscription.status == SubscriptionStatus.ACTIVE, Subscription.billed_till <= now, cycle_filter,
    ).order_by(Subscription.billed_till)))



def suspended_references(session: Session, limit: int) -> list[str]:
    """References (instances) whose subscription is suspended, the newest suspensions first."""
    return list(session.scalars(select(Subscription.reference).where(
        Subscription.status == SubscriptionStatus.SUSPENDED).order_by(Subscription.suspended_at.desc()).limit(limit)))


# ---- exchange rates ------------------------------------------------------------------------------

def rates(session: Session) -> list[ExchangeRate]:
    """Every stored exchange rate, by currency."""
    return list(session.scalars(select(ExchangeRate).order_by(ExchangeRate.currency)))


def rate_of(session: Session, currency: str) -> ExchangeRate | None:
    """The stored rate of one currency."""
    return session.scalars(select(ExchangeRate).where(ExchangeRate.currency == currency)).first()


def insert_rate(session: Session, row: ExchangeRate) -> ExchangeRate:
    """Add a rate."""
    session.add(row)
    session.flush()
    return row


def delete_rate(session: Session, row: ExchangeRate) -> None:
    """Remove a rate."""
    session.delete(row)
    session.flush()


# ---- project prices ------------------------------------------------------------------------------

def project_prices(session: Session, project_id: int | None = None) -> list[ProjectPrice]:
    """Project prices, of one project or of all."""
    query = select(ProjectPrice).order_by(ProjectPrice.project_id, ProjectPrice.plan_id)
    if project_id is not None:
        query = query.where(ProjectPrice.project_id == project_id)
    return list(session.scalars(query))


def project_price(session: Session, project_id: int, plan_id: int) -> ProjectPrice | None:
    """A project's own price of one plan."""
    return session.scalars(select(ProjectPrice).where(ProjectPrice.project_id == project_id,
                                                      ProjectPrice.plan_id == plan_id)).first()


def project_price_by_id(session: Session, price_id: int) -> ProjectPrice | None:
    """A project price by id, or None (ids out of INTEGER range included)."""
    return session.get(ProjectPrice, price_id) if in_range(price_id) else None


def insert_project_price(session: Session, row: ProjectPrice) -> ProjectPrice:
    """Add a project price; the caller runs it in a savepoint (a missing project fails the foreign key)."""
    session.add(row)
    session.flush()
    return row


def delete_project_price(session: Session, row: ProjectPrice) -> None:
    """Remove a project price."""
    session.delete(row)
    session.flush()


def flush(session: Session) -> None:
    """Write pending changes so constraints are checked now."""
    session.flush()
