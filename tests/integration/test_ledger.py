"""The ledger: balances are sums of immutable entries, keys are once-only, debits never overdraw."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from cloudlet.billing import service as billing
from cloudlet.billing.models import EntryKind, EntryType, LedgerEntry
from cloudlet.events import service as events
from cloudlet.kit.errors import PaymentRequired
from cloudlet.surfaces.deps import Runtime
from tests.helpers import make_user


def _sum(runtime: Runtime, wallet_id: int) -> int:
    with runtime.db.session(write=False) as s:
        return int(s.scalar(select(func.coalesce(func.sum(LedgerEntry.amount_cents), 0))
                            .where(LedgerEntry.wallet_id == wallet_id)) or 0)


def test_balance_is_the_sum_of_entries_and_a_repeated_key_changes_nothing(runtime: Runtime) -> None:
    person = make_user(runtime, "ledger@example.com")
    with runtime.db.session() as s:
        wallet_id = billing.wallet_of(s, runtime.settings, person.project_id).id
        first = billing.credit(s, wallet_id, 1000, kind=EntryKind.ADMIN_CREDIT, key="k1")
        again = billing.credit(s, wallet_id, 999, kind=EntryKind.ADMIN_CREDIT, key="k1")
        billing.debit(s, wallet_id, 300, kind=EntryKind.CHARGE_CREATE, key="k2")
    assert again == first
    with runtime.db.session() as s:
        billing.debit(s, wallet_id, 300, kind=EntryKind.CHARGE_CREATE, key="k2")  # a retried step
        assert billing.balance_cents(s, runtime.settings, person.project_id) == 700
    assert _sum(runtime, wallet_id) == 700


def test_a_debit_never_overdraws_and_writes_nothing_when_refused(runtime: Runtime) -> None:
    person = make_user(runtime, "poor@example.com")
    with runtime.db.session() as s:
        wallet_id = billing.wallet_of(s, runtime.settings, person.project_id).id
        billing.credit(s, wallet_id, 500, kind=EntryKind.ADMIN_CREDIT, key="in")
    with pytest.raises(PaymentRequired) as refused, runtime.db.session() as s:
        billing.debit(s, wallet_id, 501, kind=EntryKind.CHARGE_CREATE, key="out")
    assert refused.value.code == "INSUFFICIENT_BALANCE"
    assert "5.01" in refused.value.message and "5.00" in refused.value.message
    with runtime.db.session() as s:
        assert billing.debit(s, wallet_id, 500, kind=EntryKind.CHARGE_CREATE, key="out").balance_after_cents == 0
    assert _sum(runtime, wallet_id) == 0


def test_each_entry_stores_the_running_balance_in_sequence(runtime: Runtime) -> None:
    person = make_user(runtime, "seq@example.com")
    with runtime.db.session() as s:
        wallet_id = billing.wallet_of(s, runtime.settings, person.project_id).id
        for i, (kind, amount) in enumerate([(EntryType.CREDIT, 50), (EntryType.DEBIT, 20), (EntryType.CREDIT, 5)]):
            billing.post(s, wallet_id, type_=kind, kind=EntryKind.ADMIN_CREDIT if kind is EntryType.CREDIT
                         else EntryKind.HOURLY, amount_cents=amount, key=f"e{i}")
    with runtime.db.session(write=False) as s:
        rows = list(s.scalars(select(LedgerEntry).where(LedgerEntry.wallet_id == wallet_id).order_by(LedgerEntry.seq)))
    assert [(r.seq, r.amount_cents, r.balance_after_cents) for r in rows] == [(1, 50, 50), (2, -20, 30), (3, 5, 35)]


def test_crossing_the_low_balance_threshold_downwards_records_one_event_per_crossing(runtime: Runtime) -> None:
    person = make_user(runtime, "low@example.com")
    with runtime.db.session() as s:
        wallet = billing.wallet_of(s, runtime.settings, person.project_id)
        wallet.low_balance_threshold_cents = 1000
        wallet_id = wallet.id
        billing.credit(s, wallet_id, 1500, kind=EntryKind.ADMIN_CREDIT, key="c1")
        billing.debit(s, wallet_id, 400, kind=EntryKind.HOURLY, key="d1")  # 1100: still above
        billing.debit(s, wallet_id, 200, kind=EntryKind.HOURLY, key="d2")  # 900: crossed
        billing.debit(s, wallet_id, 100, kind=EntryKind.HOURLY, key="d3")  # 800: still below, no new event
        billing.debit(s, wallet_id, 100, kind=EntryKind.HOURLY, key="d3")  # a retry: nothing
    with runtime.db.session(write=False) as s:
        found = events.recent(s, project_id=person.project_id, kind="wallet.low_balance")
    assert len(found) == 1
    assert found[0].payload["balance_cents"] == 900 and found[0].payload["threshold_cents"] == 1000
    with runtime.db.session() as s:
        billing.credit(s, wallet_id, 500, kind=EntryKind.TOPUP, key="c2")  # 1300: back above
        billing.debit(s, wallet_id, 1000, kind=EntryKind.HOURLY, key="d4")  # 300: crossed again
    with runtime.db.session(write=False) as s:
        assert len(events.recent(s, project_id=person.project_id, kind="wallet.low_balance")) == 2


def test_new_wallets_get_the_trial_credit_once(runtime: Runtime) -> None:
    runtime.settings.wallet_trial_credit_cents = 250
    person = make_user(runtime, "trial@example.com")
    with runtime.db.session() as s:
        wallet_id = billing.wallet_of(s, runtime.settings, person.project_id).id
        billing.wallet_of(s, runtime.settings, person.project_id)
    with runtime.db.session(write=False) as s:
        assert billing.balance_cents(s, runtime.settings, person.project_id) == 250
    assert _sum(runtime, wallet_id) == 250
