"""Wallets, the ledger and the billing engine.

The ledger is the only writer of money: a wallet's balance is the sum of its immutable entries and
each entry stores the balance after it, written while the wallet row is locked, so a balance is
read with one index seek. Every entry carries an idempotency key unique in its wallet; posting
under a key that exists returns the existing entry and changes nothing, so a retried step can
never charge twice. Debits never overdraw (PaymentRequired, code INSUFFICIENT_BALANCE).

The engine bills subscriptions (what an instance is paid through) from plain inputs - a price in
minor units, a cycle length in months, timestamps - so it knows nothing of the catalogue.
Every step builds its ledger key from the subscription and the period it pays for.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel
from sqlalchemy.orm import Session

from cloudlet.auth.models import User, UserStatus
from cloudlet.billing import pricing, proration, repository
from cloudlet.billing.models import (
    HOURLY,
    EntryKind,
    EntryType,
    LedgerEntry,
    Pool,
    Subscription,
    SubscriptionStatus,
    Wallet,
)
from cloudlet.billing.payments import PaymentProvider
from cloudlet.billing.schemas import (
    AccountRead,
    Actor,
    AgentCreditsRead,
    AgentFunding,
    BillingOverview,
    Charge,
    CreditCreate,
    EntryRead,
    QuoteAction,
    QuoteRead,
    Renewal,
    SubscriptionCreate,
    SubscriptionRead,
    TopUpCreate,
    TopUpRead,
    TransactionPage,
    UsageRead,
    WalletRead,
    WalletUpdate,
)
from cloudlet.config import Settings
from cloudlet.events import service as events
from cloudlet.events.schemas import EventKind
from cloudlet.kit import clock, money
from cloudlet.kit.errors import Conflict, Forbidden, Invalid, NotFound, PaymentRequired
from cloudlet.projects import service as projects
from cloudlet.projects.schemas import Actor as Member
from cloudlet.projects.schemas import Permission, ProjectCreate, ProjectRoleRead


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


# --- wallets -----------------------------------------------------------------------------------


def open_wallets(session: Session, settings: Settings, project_id: int) -> None:
    """Make a new project's wallets (main and agent pool) with their trial credits, in the transaction
    that creates the project, so that no read ever has to write one."""
    for pool in Pool:
        wallet_of(session, settings, project_id, pool)


def create_team_project(session: Session, settings: Settings, actor: Member,
                        data: ProjectCreate) -> ProjectRoleRead:
    """Make a team project with the actor as its owner, and its wallets."""
    made = projects.create_team_project(session, actor, data)
    open_wallets(session, settings, made.id)
    return made


def wallet_of(session: Session, settings: Settings, project_id: int, pool: Pool = Pool.MAIN) -> Wallet:
    """The project's wallet of a pool for a writing transaction; one that is missing is made here.

    Projects get their wallets when they are made (open_wallets) and the migration 0011 gave older
    ones theirs, so this creates only for a project that somehow has none, and only while writing.
    """
    found = repository.find_wallet(session, project_id, pool)
    if found is not None:
        return found
    wallet, created = repository.insert_wallet_once(session, Wallet(
        project_id=project_id, pool=pool, currency=money.normalize_currency(settings.wallet_currency),
        low_balance_threshold_cents=settings.wallet_low_balance_cents if pool is Pool.MAIN else None,
    ))
    trial = settings.wallet_trial_credit_cents if pool is Pool.MAIN else settings.agent_trial_credit_cents
    if created and trial > 0:
        post(session, wallet.id, type_=EntryType.CREDIT, kind=EntryKind.TRIAL_CREDIT, amount_cents=trial,
             key=f"trial:{wallet.id}", description="Trial credit")
    return wallet


def _wallet(session: Session, project_id: int, pool: Pool = Pool.MAIN) -> Wallet:
    # Reads run in read transactions, which must not write (on SQLite a write there waits for and
    # then fails on the database lock): they only ever find the wallet the project was made with.
    found = repository.find_wallet(session, project_id, pool)
    if found is None:
        raise NotFound("wallet", project_id)
    return found


def _wallet_read(session: Session, wallet: Wallet) -> WalletRead:
    return WalletRead(
        id=wallet.id, project_id=wallet.project_id, pool=wallet.pool, currency=wallet.currency,
        balance_cents=repository.balance(session, wallet.id),
        low_balance_threshold_cents=wallet.low_balance_threshold_cents,
        auto_funding_enabled=wallet.auto_funding_enabled,
        auto_funding_threshold_cents=wallet.auto_funding_threshold_cents,
        auto_funding_amount_cents=wallet.auto_funding_amount_cents,
    )


def project_in_reach(session: Session, actor: Actor, project_id: int | None) -> int:
    """The project a request acts on: the one named (if the actor belongs to it), else the default."""
    if project_id is None:
        return actor.project_id
    projects.require_membership(session, actor.user.id, project_id, fence=actor.project_scope)
    return project_id


def wallet(session: Session, settings: Settings, actor: Actor, project_id: int | None = None) -> WalletRead:
    """The main wallet of a project the actor is in, with its balance."""
    return _wallet_read(session, _wallet(session, project_in_reach(session, actor, project_id)))


def project_wallet(session: Session, settings: Settings, project_id: int) -> WalletRead:
    """A project's main wallet, for operators and jobs (no membership check)."""
    projects_exist(session, project_id)
    return _wallet_read(session, _wallet(session, project_id))


def projects_exist(session: Session, project_id: int) -> None:
    """Raise NotFound unless the project exists."""
    if not projects.project_exists(session, project_id):
        raise NotFound("project", project_id)


def balance_cents(session: Session, settings: Settings, project_id: int) -> int:
    """A project's main wallet balance in minor units, in one query."""
    found = repository.project_balance(session, project_id, Pool.MAIN)
    if found is None:
        raise NotFound("wallet", project_id)
    return found


def update_wallet(session: Session, settings: Settings, actor: Actor, data: WalletUpdate,
                  project_id: int | None = None) -> WalletRead:
    """Change the low-balance threshold and auto-funding settings (owners, or members allowed to top up)."""
    target = project_in_reach(session, actor, project_id)
    _require_topup_right(session, actor, target)
    found = wallet_of(session, settings, target)
    for name, value in data.model_dump(exclude_unset=True).items():
        if value is None and name != "low_balance_threshold_cents":
            raise Invalid(name, f"The {name} field cannot be null.")
        setattr(found, name, value)
    session.flush()
    return _wallet_read(session, found)


def transactions(session: Session, settings: Settings, actor: Actor, *, type_: EntryType | None = None,
                 limit: int = 50, offset: int = 0, project_id: int | None = None) -> TransactionPage:
    """A page of the wallet's ledger, newest first, of one type when asked."""
    found = _wallet(session, project_in_reach(session, actor, project_id))
    rows = repository.entries(session, found.id, type_=type_, limit=limit, offset=offset)
    if type_ is None:  # seq numbers the entries 1..n, so the newest seq is the count without scanning
        last = repository.last_entry(session, found.id)
        total = last.seq if last is not None else 0
    else:
        total = repository.count_entries(session, found.id, type_=type_)
    return TransactionPage(items=[EntryRead.model_validate(e) for e in rows], total=total, limit=limit, offset=offset)


def account(session: Session, settings: Settings, actor: Actor) -> AccountRead:
    """The actor's account with the balance of their default project's wallet."""
    user = actor.user
    found = _wallet(session, actor.project_id)
    return AccountRead(id=user.id, email=user.email, full_name=user.name, currency=found.currency,
                       balance_cents=repository.balance(session, found.id), active=user.status is UserStatus.ACTIVE,
                       two_factor_enabled=user.mfa_enabled, registration_date=user.created_at)


def overview(session: Session, settings: Settings, actor: Actor, *, recent: int = 10) -> BillingOverview:
    """The wallet of the actor's default project with its newest entries."""
    found = _wallet(session, actor.project_id)
    rows = repository.entries(session, found.id, type_=None, limit=recent, offset=0)
    return BillingOverview(wallet=_wallet_read(session, found), recent=[EntryRead.model_validate(e) for e in rows])


def agent_credits(session: Session, settings: Settings, actor: Actor) -> AgentCreditsRead:
    """The AI agent's credit pool of the actor's project; agent usage spends the trial credit first."""
    pool = _wallet(session, actor.project_id, Pool.AGENT)
    balance = repository.balance(session, pool.id)
    trial = repository.sum_amounts(session, pool.id, kind=EntryKind.TRIAL_CREDIT)
    spent = -repository.sum_amounts(session, pool.id, type_=EntryType.DEBIT)
    return AgentCreditsRead(balance_cents=balance, trial_remaining_cents=min(balance, max(0, trial - spent)))


def fund_agent(session: Session, settings: Settings, actor: Actor, data: AgentFunding, *,
               key: str | None = None) -> AgentCreditsRead:
    """Move money from the actor's project's main wallet into its AI agent credit pool (members allowed to add
    funds); 402 when the wallet cannot cover it, and then nothing moves."""
    _require_topup_right(session, actor, actor.project_id)
    key = key or f"agent_funding:{uuid.uuid4().hex}"
    main = wallet_of(session, settings, actor.project_id)
    pool = wallet_of(session, settings, actor.project_id, Pool.AGENT)
    debit(session, main.id, data.amount_cents, kind=EntryKind.AGENT_FUNDING, key=f"{key}:out",
          description="Moved to the AI agent credit pool", actor_user_id=actor.user.id)
    credit(session, pool.id, data.amount_cents, kind=EntryKind.AGENT_FUNDING, key=f"{key}:in",
           description="From the main wallet", actor_user_id=actor.user.id)
    return agent_credits(session, settings, actor)


def agent_balance(session: Session, project_id: int) -> int:
    """A project's AI-agent credit pool balance in cents (0 when it has none)."""
    found = repository.find_wallet(session, project_id, Pool.AGENT)
    return repository.balance(session, found.id) if found is not None else 0


def charge_agent(session: Session, settings: Settings, project_id: int, cents: int, *, key: str,
                 description: str) -> int:
    """Debit the project's AI-agent pool for usage already made, once per key: as much of `cents` as the pool
    holds (the trial credit is spent first: it is the pool's oldest money). The cents debited; fewer when the
    pool ran short, which the caller takes as the end of the credit."""
    pool = wallet_of(session, settings, project_id, Pool.AGENT)
    repository.lock_wallet(session, pool.id)
    existing = repository.entry_by_key(session, pool.id, key)
    if existing is not None:
        return -existing.amount_cents
    taken = min(cents, repository.balance(session, pool.id))
    if taken > 0:
        debit(session, pool.id, taken, kind=EntryKind.AGENT_USAGE, key=key, description=description)
    return taken


# --- the ledger --------------------------------------------------------------------------------


class LowBalance(BaseModel):
    """The payload of a wallet.low_balance event."""

    wallet_id: int
    currency: str
    balance_cents: int
    threshold_cents: int
    entry_id: int


def _insufficient(needed: int, held: int, currency: str) -> PaymentRequired:
    return PaymentRequired(
        f"Insufficient wallet balance: this needs {money.format_amount(needed, currency)} {currency} "
        f"and the wallet holds {money.format_amount(held, currency)} {currency}.")


def post(session: Session, wallet_id: int, *, type_: EntryType, kind: EntryKind, amount_cents: int, key: str,
         description: str = "", reference: str | None = None, actor_user_id: int | None = None) -> EntryRead:
    """Append one entry under the wallet's lock; the same key again returns the first entry unchanged.

    amount_cents is positive; a debit is stored negated. A debit the balance cannot cover raises
    PaymentRequired and writes nothing. Crossing the low-balance threshold downwards records one
    wallet.low_balance event.
    """
    if amount_cents <= 0:
        raise Invalid("amount_cents", "An amount must be a positive number of minor units.")
    if not key or len(key) > 200:
        raise Invalid("idempotency_key", "An idempotency key is 1 to 200 characters.")
    locked = repository.lock_wallet(session, wallet_id)
    existing = repository.entry_by_key(session, wallet_id, key)
    if existing is not None:
        return EntryRead.model_validate(existing)
    last = repository.last_entry(session, wallet_id)
    before = last.balance_after_cents if last is not None else 0
    signed = amount_cents if type_ is EntryType.CREDIT else -amount_cents
    after = before + signed
    if after < 0:
        raise _insufficient(amount_cents, before, locked.currency)
    entry = repository.insert_entry(session, LedgerEntry(
        wallet_id=wallet_id, seq=(last.seq if last is not None else 0) + 1, type=type_, kind=kind,
        amount_cents=signed, balance_after_cents=after, idempotency_key=key, description=description[:500],
        reference=reference, actor_user_id=actor_user_id, created_at=clock.now(),
    ))
    threshold = locked.low_balance_threshold_cents
    if threshold is not None and before >= threshold > after:
        events.record(session, EventKind.WALLET_LOW_BALANCE, project_id=locked.project_id,
                      subject=f"wallet:{wallet_id}",
                      payload=LowBalance(wallet_id=wallet_id, currency=locked.currency, balance_cents=after,
                                         threshold_cents=threshold, entry_id=entry.id))
    return EntryRead.model_validate(entry)


def debit(session: Session, wallet_id: int, amount_cents: int, *, kind: EntryKind, key: str, description: str = "",
          reference: str | None = None, actor_user_id: int | None = None) -> EntryRead:
    """Take money out of a wallet (see post)."""
    return post(session, wallet_id, type_=EntryType.DEBIT, kind=kind, amount_cents=amount_cents, key=key,
                description=description, reference=reference, actor_user_id=actor_user_id)


def credit(session: Session, wallet_id: int, amount_cents: int, *, kind: EntryKind, key: str, description: str = "",
           reference: str | None = None, actor_user_id: int | None = None) -> EntryRead:
    """Put money into a wallet (see post)."""
    return post(session, wallet_id, type_=EntryType.CREDIT, kind=kind, amount_cents=amount_cents, key=key,
                description=description, reference=reference, actor_user_id=actor_user_id)


# --- credits and top-ups ---------------------------------------------------------------------


def admin_credit(session: Session, settings: Settings, project_id: int, data: CreditCreate, *, actor: User,
                 key: str | None = None) -> EntryRead:
    """An operator's credit to a project's wallet; without a key every call is a new credit."""
    projects_exist(session, project_id)
    found = wallet_of(session, settings, project_id, data.pool)
    return credit(session, found.id, data.amount_cents, kind=EntryKind.ADMIN_CREDIT,
                  key=key or f"admin_credit:{uuid.uuid4().hex}", description=data.reason or "Credit from an operator",
                  actor_user_id=actor.id)


def credit_user(session: Session, settings: Settings, user: User, data: CreditCreate) -> EntryRead:
    """Credit the user's personal project wallet (the `cloudlet wallet credit` command)."""
    if user.personal_project_id is None:
        raise NotFound("project")
    found = wallet_of(session, settings, user.personal_project_id, data.pool)
    return credit(session, found.id, data.amount_cents, kind=EntryKind.ADMIN_CREDIT,
                  key=f"admin_credit:{uuid.uuid4().hex}", description=data.reason or "Credit from an operator")


def _require_topup_right(session: Session, actor: Actor, project_id: int) -> None:
    if not projects.can(session, project_id, actor.user.id, Permission.WALLET_TOPUP):
        raise Forbidden("Only project owners and members allowed to add funds can do this.", code="FORBIDDEN")


def top_up(session: Session, settings: Settings, provider: PaymentProvider, actor: Actor, data: TopUpCreate, *,
           key: str | None = None, project_id: int | None = None) -> TopUpRead:
    """Collect money through the payment provider and credit what it settled."""
    target = project_in_reach(session, actor, project_id)
    _require_topup_right(session, actor, target)
    found = wallet_of(session, settings, target)
    payment = provider.collect(session, payer=actor.user, amount_cents=data.amount_cents, currency=found.currency,
                               key=key or uuid.uuid4().hex)
    entry = credit(session, found.id, payment.amount_cents, kind=EntryKind.TOPUP,
                   key=f"topup:{provider.name}:{payment.reference}", reference=payment.reference,
                   description=f"Top-up via {provider.name}", actor_user_id=actor.user.id)
    return TopUpRead(provider=provider.name, provider_reference=payment.reference, entry=entry,
                     balance_cents=repository.balance(session, found.id))


def usage(session: Session, settings: Settings, actor: Actor, *, now: datetime | None = None) -> UsageRead:
    """This calendar month's debits and credits, the balance, and what active subscriptions cost a month."""
    moment = now or clock.now()
    start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    target = actor.project_id
    found = _wallet(session, target)
    subs = repository.subscriptions_of(session, target)
    run_rate = sum(s.price_cents if s.hourly else s.price_cents // s.months for s in subs
                   if s.status is SubscriptionStatus.ACTIVE)
    return UsageRead(
        project_id=target, currency=found.currency, period_start=start, period_end=proration.add_months(start, 1),
        debited_cents=-repository.sum_amounts(session, found.id, type_=EntryType.DEBIT, since=start),
        credited_cents=repository.sum_amounts(session, found.id, type_=EntryType.CREDIT, since=start),
        balance_cents=repository.balance(session, found.id),
        active_subscriptions=sum(1 for s in subs if s.status is SubscriptionStatus.ACTIVE),
        suspended_subscriptions=sum(1 for s in subs if s.status is SubscriptionStatus.SUSPENDED),
        monthly_run_rate_cents=run_rate,
    )


# --- the billing engine ------------------------------------------------------------------------


class SubscriptionEvent(BaseModel):
    """The payload of a subscription.* event."""

    subscription_id: int
    reference: str
    billed_till: datetime
    grace_until: datetime | None = None


def _read(subscription: Subscription) -> SubscriptionRead:
    return SubscriptionRead.model_validate(subscription)


def _charge(subscription: Subscription, entry: EntryRead | None) -> Charge:
    return Charge(subscription=_read(subscription), entry=entry, amount_cents=-entry.amount_cents if entry else 0)


def _locked(session: Session, subscription_id: int) -> Subscription:
    found = repository.subscription(session, subscription_id, lock=True)
    if found is None:
        raise NotFound("subscription", subscription_id)
    return found


def _event(session: Session, kind: EventKind, subscription: Subscription) -> None:
    events.record(session, kind, project_id=subscription.project_id, subject=f"subscription:{subscription.id}",
                  payload=SubscriptionEvent(subscription_id=subscription.id, reference=subscription.reference,
                                            billed_till=subscription.billed_till,
                                            grace_until=subscription.grace_until))


def subscription(session: Session, subscription_id: int) -> SubscriptionRead:
    """A subscription by id."""
    found = repository.subscription(session, subscription_id)
    if found is None:
        raise NotFound("subscription", subscription_id)
    return _read(found)


def subscription_for(session: Session, reference: str) -> SubscriptionRead | None:
    """The subscription paying for a reference (an instance id), if any."""
    found = repository.subscription_by_reference(session, reference)
    return _read(found) if found is not None else None


def start_subscription(session: Session, settings: Settings, data: SubscriptionCreate, *,
                       now: datetime | None = None) -> Charge:
    """Start billing a reference: debit the first cycle (or the first hour) and set billed_till.

    Idempotent on the reference: starting it again returns the subscription and its first charge.
    Raises PaymentRequired (and writes nothing) when the wallet cannot pay.
    """
    moment = now or clock.now()
    hourly = data.cycle == HOURLY
    found = repository.subscription_by_reference(session, data.reference)
    if found is not None:
        first = repository.entry_by_key(session, found.wallet_id, f"charge_create:{data.reference}")
        return _charge(found, EntryRead.model_validate(first) if first else None)
    wallet_ = wallet_of(session, settings, data.project_id)
    months = 1 if hourly else data.months
    amount = proration.hourly_charge(data.price_cents, moment, moment).amount if hourly else data.price_cents
    entry: EntryRead | None = None
    if amount > 0:
        entry = debit(session, wallet_.id, amount, kind=EntryKind.CHARGE_CREATE, key=f"charge_create:{data.reference}",
                      reference=data.reference, description=f"Creation of {data.reference} ({data.cycle})")
    sub = repository.insert_subscription(session, Subscription(
        project_id=data.project_id, wallet_id=wallet_.id, reference=data.reference, plan_id=data.plan_id,
        cycle=data.cycle, months=months, price_cents=data.price_cents, anchor_at=moment, started_at=moment,
        period_start=moment, billed_till=proration.first_period_end(moment, months, hourly=hourly),
        paid_cents=amount, status=SubscriptionStatus.ACTIVE,
    ))
    return _charge(sub, entry)


def upgrade_subscription(session: Session, subscription_id: int, *, plan_id: int, price_cents: int,
                         now: datetime | None = None) -> Charge:
    """Move to a plan that costs at least as much, debiting the prorated difference for the rest of the period.

    Hourly subscriptions pay the new price from the next hour. Idempotent: upgrading to the plan
    already held changes nothing.
    """
    moment = now or clock.now()
    sub = _locked(session, subscription_id)
    if sub.status is not SubscriptionStatus.ACTIVE:
        raise Conflict(f"The subscription is {sub.status.value}; only an active one can be upgraded.")
    if sub.plan_id == plan_id and sub.price_cents == price_cents:
        return _charge(sub, None)
    if price_cents < sub.price_cents:
        raise Invalid("plan_id", "A plan can only be upgraded to one that costs at least as much.")
    entry: EntryRead | None = None
    if not sub.hourly:
        amount = proration.upgrade_charge(sub.price_cents, price_cents, sub.period_start, sub.billed_till, moment)
        if amount > 0:
            entry = debit(session, sub.wallet_id, amount, kind=EntryKind.CHARGE_UPGRADE,
                          key=f"upgrade:{sub.id}:{sub.plan_id}:{plan_id}:{_iso(sub.period_start)}",
                          reference=sub.reference, description=f"Upgrade of {sub.reference} (prorated)")
            sub.paid_cents += amount
    sub.plan_id, sub.price_cents = plan_id, price_cents
    session.flush()
    return _charge(sub, entry)


def terminate_subscription(session: Session, subscription_id: int, *, now: datetime | None = None) -> Charge:
    """Immediate deletion: end now and credit the prorated unused part of the period (never more than paid).

    Hourly subscriptions get nothing back for the started hour. Idempotent: ending an ended
    subscription returns its refund again.
    """
    moment = now or clock.now()
    sub = _locked(session, subscription_id)
    key = f"refund:{sub.id}:{_iso(sub.period_start)}"
    if sub.status is SubscriptionStatus.ENDED:
        found = repository.entry_by_key(session, sub.wallet_id, key)
        return _charge(sub, EntryRead.model_validate(found) if found else None)
    amount = 0
    if not sub.hourly and sub.status is SubscriptionStatus.ACTIVE:
        amount = proration.refund(sub.price_cents, sub.paid_cents, sub.period_start, sub.billed_till, moment)
    entry: EntryRead | None = None
    if amount > 0:
        entry = credit(session, sub.wallet_id, amount, kind=EntryKind.REFUND, key=key, reference=sub.reference,
                       description=f"Refund of unused time on {sub.reference}")
        sub.paid_cents -= amount
    sub.status, sub.ended_at, sub.grace_until = SubscriptionStatus.ENDED, moment, None
    session.flush()
    _event(session, EventKind.SUBSCRIPTION_ENDED, sub)
    return _charge(sub, entry)


def void_subscription(session: Session, subscription_id: int, *, now: datetime | None = None) -> Charge:
    """End a subscription whose service was never delivered (a failed build): credit all that was paid.

    Idempotent: voiding it again returns the same refund.
    """
    moment = now or clock.now()
    sub = _locked(session, subscription_id)
    key = f"void:{sub.id}"
    found = repository.entry_by_key(session, sub.wallet_id, key)
    if found is not None or (sub.status is SubscriptionStatus.ENDED and sub.paid_cents == 0):
        return _charge(sub, EntryRead.model_validate(found) if found else None)
    entry: EntryRead | None = None
    if sub.paid_cents > 0:
        entry = credit(session, sub.wallet_id, sub.paid_cents, kind=EntryKind.REFUND, key=key, reference=sub.reference,
                       description=f"Refund of {sub.reference}: it could not be built")
    sub.paid_cents = 0
    sub.status, sub.ended_at, sub.grace_until = SubscriptionStatus.ENDED, moment, None
    session.flush()
    _event(session, EventKind.SUBSCRIPTION_ENDED, sub)
    return _charge(sub, entry)


def suspended_references(session: Session, limit: int = 1000) -> list[str]:
    """What the renewal job suspended (instance references), for the instances to follow."""
    return repository.suspended_references(session, limit)


def wallet_currency(session: Session, project_id: int) -> str | None:
    """The currency of a project's main wallet, if it has one yet."""
    found = repository.find_wallet(session, project_id, Pool.MAIN)
    return found.currency if found is not None else None


def set_cancel_at_period_end(session: Session, subscription_id: int, cancel: bool) -> SubscriptionRead:
    """Cancel the renewal (end at billed_till, the `end_of_cycle` deletion) or undo that."""
    sub = _locked(session, subscription_id)
    if sub.status is SubscriptionStatus.ENDED:
        raise Conflict("The subscription has already ended.")
    sub.cancel_at_period_end = cancel
    session.flush()
    return _read(sub)


def _unpaid(session: Session, settings: Settings, sub: Subscription, now: datetime) -> None:
    """A due payment failed: start the grace period once, and suspend when it is over."""
    if sub.grace_until is None:
        sub.grace_until = sub.billed_till + timedelta(hours=settings.billing_grace_hours)
        _event(session, EventKind.SUBSCRIPTION_PAYMENT_FAILED, sub)
    if now >= sub.grace_until:
        sub.status, sub.suspended_at = SubscriptionStatus.SUSPENDED, now
        _event(session, EventKind.SUBSCRIPTION_SUSPENDED, sub)


def _end_at_period_end(session: Session, sub: Subscription) -> None:
    sub.status, sub.ended_at, sub.grace_until = SubscriptionStatus.ENDED, sub.billed_till, None
    _event(session, EventKind.SUBSCRIPTION_ENDED, sub)


def renew(session: Session, settings: Settings, subscription_id: int, *, now: datetime | None = None,
          max_periods: int = 10_000) -> Renewal:
    """Bring one subscription's billing up to now: renew each due cycle (or charge each due hour),
    end it at billed_till when its renewal was cancelled, start the grace period or suspend when
    the wallet cannot pay. Returns the entries posted; running it again posts nothing new."""
    moment = now or clock.now()
    sub = _locked(session, subscription_id)
    posted: list[EntryRead] = []
    for _ in range(max_periods):
        if sub.status is not SubscriptionStatus.ACTIVE or sub.billed_till > moment:
            break
        if sub.cancel_at_period_end:
            _end_at_period_end(session, sub)
            break
        start = sub.billed_till
        if sub.hourly:
            amount = proration.hourly_charge(sub.price_cents, sub.anchor_at, start).amount
            kind, key, end = EntryKind.HOURLY, f"hourly:{sub.id}:{_iso(start)}", start + proration.HOUR
        else:
            amount = sub.price_cents
            kind, key = EntryKind.RENEWAL, f"renewal:{sub.id}:{_iso(start)}"
            end = proration.period_end(sub.anchor_at, start, sub.months)
        if amount > 0:
            try:
                posted.append(debit(session, sub.wallet_id, amount, kind=kind, key=key, reference=sub.reference,
                                    description=f"{'Hourly charge' if sub.hourly else 'Renewal'} of {sub.reference}"))
            except PaymentRequired:
                _unpaid(session, settings, sub, moment)
                break
        sub.period_start, sub.billed_till, sub.paid_cents, sub.grace_until = start, end, amount, None
    session.flush()
    return Renewal(subscription=_read(sub), entries=posted)


def reactivate(session: Session, subscription_id: int, *, now: datetime | None = None) -> Charge:
    """Unsuspend: debit one cycle (or the first hour) from now and extend billed_till from now.

    Idempotent: reactivating an active subscription changes nothing.
    """
    moment = now or clock.now()
    sub = _locked(session, subscription_id)
    if sub.status is SubscriptionStatus.ACTIVE:
        return _charge(sub, None)
    if sub.status is SubscriptionStatus.ENDED:
        raise Conflict("The subscription has ended; it cannot be reactivated.")
    amount = proration.hourly_charge(sub.price_cents, moment, moment).amount if sub.hourly else sub.price_cents
    entry: EntryRead | None = None
    if amount > 0:
        stamp = _iso(sub.suspended_at or sub.billed_till)
        entry = debit(session, sub.wallet_id, amount, kind=EntryKind.REACTIVATION, key=f"reactivation:{sub.id}:{stamp}",
                      reference=sub.reference, description=f"Reactivation of {sub.reference}")
    sub.anchor_at = sub.period_start = moment
    sub.billed_till = proration.first_period_end(moment, sub.months, hourly=sub.hourly)
    sub.paid_cents, sub.status, sub.grace_until, sub.suspended_at = amount, SubscriptionStatus.ACTIVE, None, None
    sub.cancel_at_period_end = False
    session.flush()
    _event(session, EventKind.SUBSCRIPTION_REACTIVATED, sub)
    return _charge(sub, entry)


# --- quotes ------------------------------------------------------------------------------------


def quote_amount(action: QuoteAction, *, price_cents: int, months: int, hourly: bool, now: datetime,
                 target_price_cents: int | None = None, period_start: datetime | None = None,
                 period_end: datetime | None = None, paid_cents: int | None = None) -> tuple[int, datetime, datetime]:
    """What an action would move (positive to pay, negative to get back) and the period it covers.

    Without a period, the period is a fresh one starting now (what a new instance would be in).
    """
    start = period_start or now
    end = period_end or proration.first_period_end(start, months, hourly=hourly)
    if action is QuoteAction.CREATE:
        amount = proration.hourly_charge(price_cents, now, now).amount if hourly else price_cents
        return amount, now, proration.first_period_end(now, months, hourly=hourly)
    if action is QuoteAction.UPGRADE:
        if target_price_cents is None:
            raise Invalid("to_plan_id", "An upgrade quote needs the plan to upgrade to.")
        if target_price_cents < price_cents:
            raise Invalid("to_plan_id", "A plan can only be upgraded to one that costs at least as much.")
        amount = 0 if hourly else proration.upgrade_charge(price_cents, target_price_cents, start, end, now)
        return amount, max(now, start), end
    paid = price_cents if paid_cents is None else paid_cents
    amount = 0 if hourly else proration.refund(price_cents, paid, start, end, now)
    return -amount, max(now, start), end


def quote(session: Session, settings: Settings, actor: Actor, action: QuoteAction, *, plan_id: int | None = None,
          cycle: str = pricing.MONTHLY, currency: str | None = None, to_plan_id: int | None = None,
          subscription_id: int | None = None, now: datetime | None = None) -> QuoteRead:
    """Price a creation, an upgrade or a deletion refund of a plan (or of a subscription) without changing anything.

    With a subscription of the actor's project, its real plan, period and payments are used;
    otherwise the period is a fresh one starting now.
    """
    moment = now or clock.now()
    project_id = actor.project_id
    found = _wallet(session, project_id)
    code = money.normalize_currency(currency) if currency else found.currency
    period_start: datetime | None = None
    period_end: datetime | None = None
    paid: int | None = None
    if subscription_id is not None:
        sub = repository.subscription(session, subscription_id)
        if sub is None or sub.project_id != project_id:
            raise NotFound("subscription", subscription_id)
        plan_id, cycle, code = sub.plan_id, sub.cycle, found.currency
        period_start, period_end, paid = sub.period_start, sub.billed_till, sub.paid_cents
        current = pricing.PlanPrice(plan_id=sub.plan_id, cycle=sub.cycle, months=sub.months, currency=code,
                                    amount_cents=sub.price_cents)
    elif plan_id is None:
        raise Invalid("plan_id", "Name the plan to price (or a subscription).")
    else:
        current = pricing.plan_price(session, plan_id, cycle, code, project_id)
    target: int | None = None
    if action is QuoteAction.UPGRADE:
        if to_plan_id is None:
            raise Invalid("to_plan_id", "An upgrade quote needs the plan to upgrade to.")
        target = pricing.plan_price(session, to_plan_id, cycle, code, project_id).amount_cents
    amount, start, end = quote_amount(action, price_cents=current.amount_cents, months=current.months,
                                      hourly=current.hourly, now=moment, target_price_cents=target,
                                      period_start=period_start, period_end=period_end, paid_cents=paid)
    held = repository.balance(session, found.id)
    return QuoteRead(action=action, currency=code, amount_cents=amount, period_start=start, period_end=end,
                     balance_cents=held, sufficient_balance=amount <= held if code == found.currency else None)


def due_subscriptions(session: Session, now: datetime, *, hourly: bool) -> list[int]:
    """Ids of active subscriptions whose billed_till has come, hourly or per cycle."""
    return repository.due_subscription_ids(session, now, hourly=hourly)
