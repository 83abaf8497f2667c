"""The billing engine: creation, upgrades, refunds, renewals, grace, suspension, reactivation, hours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cloudlet import catalogue_file
from cloudlet.billing import jobs
from cloudlet.billing import service as billing
from cloudlet.billing.models import EntryKind, SubscriptionStatus
from cloudlet.billing.schemas import SubscriptionCreate
from cloudlet.catalog import service as catalog
from cloudlet.cli.main import app as cli
from cloudlet.events import service as events
from cloudlet.kit.errors import Invalid, PaymentRequired
from cloudlet.surfaces.deps import Runtime
from tests.conftest import Api
from tests.helpers import Person, make_user

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


def fund(runtime: Runtime, person: Person, cents: int, key: str = "fund") -> None:
    with runtime.db.session() as s:
        wallet_id = billing.wallet_of(s, runtime.settings, person.project_id).id
        billing.credit(s, wallet_id, cents, kind=EntryKind.ADMIN_CREDIT, key=key)


def balance(runtime: Runtime, person: Person) -> int:
    with runtime.db.session(write=False) as s:
        return billing.balance_cents(s, runtime.settings, person.project_id)


def start(runtime: Runtime, person: Person, *, price: int = 3000, cycle: str = "monthly", months: int = 1,
          ref: str = "inst-1", now: datetime = T0) -> int:
    with runtime.db.session() as s:
        charge = billing.start_subscription(s, runtime.settings, SubscriptionCreate(
            project_id=person.project_id, reference=ref, plan_id=1, cycle=cycle, months=months, price_cents=price),
            now=now)
    return charge.subscription.id


def test_creation_debits_a_cycle_up_front_once_and_refuses_without_funds(runtime: Runtime) -> None:
    person = make_user(runtime, "create@example.com")
    with pytest.raises(PaymentRequired), runtime.db.session() as s:
        billing.start_subscription(s, runtime.settings, SubscriptionCreate(
            project_id=person.project_id, reference="inst-x", plan_id=1, cycle="monthly", price_cents=3000), now=T0)
    fund(runtime, person, 5000)
    sub_id = start(runtime, person)
    again = start(runtime, person)  # the lifecycle retried its step
    assert again == sub_id
    assert balance(runtime, person) == 2000
    with runtime.db.session(write=False) as s:
        sub = billing.subscription(s, sub_id)
    assert sub.billed_till == datetime(2026, 4, 1, 12, tzinfo=UTC)
    assert sub.paid_cents == 3000 and sub.status is SubscriptionStatus.ACTIVE


def test_upgrade_charges_the_prorated_difference_and_deletion_refunds_the_unused_part(runtime: Runtime) -> None:
    person = make_user(runtime, "upgrade@example.com")
    fund(runtime, person, 10_000)
    sub_id = start(runtime, person, price=3100)  # March: 31 days
    half = T0 + timedelta(days=15, hours=12)
    with runtime.db.session() as s:
        up = billing.upgrade_subscription(s, sub_id, plan_id=2, price_cents=6200, now=half)
        same = billing.upgrade_subscription(s, sub_id, plan_id=2, price_cents=6200, now=half)
    assert up.amount_cents == 1550 and same.amount_cents == 0
    assert balance(runtime, person) == 10_000 - 3100 - 1550
    with pytest.raises(Invalid), runtime.db.session() as s:
        billing.upgrade_subscription(s, sub_id, plan_id=1, price_cents=3100, now=half)
    three_quarters = T0 + timedelta(days=23, hours=6)  # 7.75 days of 31 left
    with runtime.db.session() as s:
        gone = billing.terminate_subscription(s, sub_id, now=three_quarters)
        retried = billing.terminate_subscription(s, sub_id, now=three_quarters + timedelta(hours=1))
    assert gone.amount_cents == -1550  # 6200 * 7.75/31
    assert retried.entry == gone.entry
    assert gone.subscription.status is SubscriptionStatus.ENDED
    assert balance(runtime, person) == 10_000 - 3100 - 1550 + 1550


def test_renewal_at_billed_till_then_cancel_at_period_end_ends_without_charging(runtime: Runtime) -> None:
    person = make_user(runtime, "renew@example.com")
    fund(runtime, person, 10_000)
    sub_id = start(runtime, person, price=3000)
    due = datetime(2026, 4, 1, 12, tzinfo=UTC)
    report = jobs.run_renewals(runtime.db, runtime.settings, due)
    assert report.renewed == 1
    assert jobs.run_renewals(runtime.db, runtime.settings, due).renewed == 0  # idempotent
    assert balance(runtime, person) == 4000
    with runtime.db.session() as s:
        assert billing.set_cancel_at_period_end(s, sub_id, True).cancel_at_period_end
        assert not billing.set_cancel_at_period_end(s, sub_id, False).cancel_at_period_end  # undo
        billing.set_cancel_at_period_end(s, sub_id, True)
    report = jobs.run_renewals(runtime.db, runtime.settings, datetime(2026, 5, 1, 12, tzinfo=UTC))
    assert report.ended == 1 and report.renewed == 0
    assert balance(runtime, person) == 4000
    with runtime.db.session(write=False) as s:
        sub = billing.subscription(s, sub_id)
    assert sub.status is SubscriptionStatus.ENDED and sub.ended_at == datetime(2026, 5, 1, 12, tzinfo=UTC)


def test_an_unpaid_renewal_suspends_after_the_grace_period_and_reactivation_restarts_the_cycle(
        runtime: Runtime) -> None:
    runtime.settings.billing_grace_hours = 48
    person = make_user(runtime, "grace@example.com")
    fund(runtime, person, 3000)
    sub_id = start(runtime, person, price=3000)
    due = datetime(2026, 4, 1, 12, tzinfo=UTC)
    first = jobs.run_renewals(runtime.db, runtime.settings, due)
    assert first.in_grace == 1 and first.suspended == 0
    assert jobs.run_renewals(runtime.db, runtime.settings, due + timedelta(hours=47)).in_grace == 1
    late = jobs.run_renewals(runtime.db, runtime.settings, due + timedelta(hours=48))
    assert late.suspended == 1
    with runtime.db.session(write=False) as s:
        sub = billing.subscription(s, sub_id)
        kinds = [e.kind for e in events.recent(s, project_id=person.project_id)]
    assert sub.status is SubscriptionStatus.SUSPENDED
    assert kinds.count("subscription.payment_failed") == 1 and kinds.count("subscription.suspended") == 1
    assert jobs.run_renewals(runtime.db, runtime.settings, due + timedelta(days=10)).renewed == 0
    back = due + timedelta(days=5)
    with pytest.raises(PaymentRequired), runtime.db.session() as s:
        billing.reactivate(s, sub_id, now=back)
    fund(runtime, person, 3500, key="more")
    with runtime.db.session() as s:
        again = billing.reactivate(s, sub_id, now=back)
        twice = billing.reactivate(s, sub_id, now=back)
    assert again.amount_cents == 3000 and twice.amount_cents == 0
    assert again.subscription.billed_till == datetime(2026, 5, 6, 12, tzinfo=UTC)
    assert again.subscription.status is SubscriptionStatus.ACTIVE
    assert balance(runtime, person) == 500


def test_a_renewal_paid_within_grace_covers_the_period_from_the_old_billed_till(runtime: Runtime) -> None:
    person = make_user(runtime, "late@example.com")
    fund(runtime, person, 3000)
    sub_id = start(runtime, person, price=3000)
    due = datetime(2026, 4, 1, 12, tzinfo=UTC)
    jobs.run_renewals(runtime.db, runtime.settings, due)
    fund(runtime, person, 3000, key="topup")
    assert jobs.run_renewals(runtime.db, runtime.settings, due + timedelta(hours=5)).renewed == 1
    with runtime.db.session(write=False) as s:
        sub = billing.subscription(s, sub_id)
    assert sub.period_start == due and sub.billed_till == datetime(2026, 5, 1, 12, tzinfo=UTC)
    assert sub.grace_until is None


def test_hourly_billing_charges_each_started_hour_capped_at_the_monthly_price(runtime: Runtime) -> None:
    person = make_user(runtime, "hourly@example.com")
    fund(runtime, person, 10_000)
    sub_id = start(runtime, person, price=600, cycle="hourly")
    assert balance(runtime, person) == 10_000 - 1
    report = jobs.run_hourly(runtime.db, runtime.settings, T0 + timedelta(hours=9, minutes=30))
    assert report.hours_charged >= 1
    assert jobs.run_hourly(runtime.db, runtime.settings, T0 + timedelta(hours=9, minutes=30)).hours_charged == 0
    # Ten started hours of a 6.00 plan: ceil(10 * 600 / 730) = 9 cents.
    assert balance(runtime, person) == 10_000 - 9
    jobs.run_hourly(runtime.db, runtime.settings, T0 + timedelta(days=31) - timedelta(minutes=1))
    assert balance(runtime, person) == 10_000 - 600  # the whole month window costs the monthly price
    with runtime.db.session() as s:
        gone = billing.terminate_subscription(s, sub_id, now=T0 + timedelta(days=31))
    assert gone.amount_cents == 0


def test_billing_run_command_runs_the_due_jobs_once(runtime: Runtime, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    person = make_user(runtime, "cli@example.com")
    fund(runtime, person, 10_000)
    start(runtime, person, price=3000, now=datetime(2020, 1, 1, tzinfo=UTC))
    monkeypatch.setenv("CLOUDLET_DATABASE_URL", runtime.settings.effective_database_url)
    monkeypatch.setenv("CLOUDLET_DATA_DIR", str(tmp_path / "data"))
    result = CliRunner().invoke(cli, ["billing", "run", "--json"])
    assert result.exit_code == 0, result.output
    # 10_000 paid the creation and two renewals; the third, years overdue, is past its grace period.
    assert '"renewed": 2' in result.output and '"suspended": 1' in result.output
    assert balance(runtime, person) == 10_000 - 3 * 3000
    again = CliRunner().invoke(cli, ["billing", "run", "--json"])
    assert '"renewed": 0' in again.output and '"suspended": 0' in again.output


def test_quotes_price_creation_upgrade_and_refund_without_changing_anything(api: Api, runtime: Runtime) -> None:
    person = make_user(runtime, "quote@example.com")
    with runtime.db.session() as s:
        catalogue_file.seed_default(s)
        small, big = catalog.get_plan(s, "scout-1").id, catalog.get_plan(s, "scout-2").id
    fund(runtime, person, 1000)
    client = api.as_(person.token)
    created = client.post("/api/billing/quotes", json={"action": "create", "plan_id": small, "cycle": "monthly"})
    assert created.status_code == 200, created.text
    assert created.json()["amount_cents"] == 600 and created.json()["amount"] == "6.00"
    assert created.json()["sufficient_balance"] is True
    up = client.post("/api/billing/quotes", json={"action": "upgrade", "plan_id": small, "to_plan_id": big})
    assert up.json()["amount_cents"] == 600  # a fresh period: the whole difference
    refund = client.post("/api/billing/quotes", json={"action": "delete", "plan_id": small})
    assert refund.json()["amount_cents"] == -600
    hourly = client.post("/api/billing/quotes", json={"action": "create", "plan_id": small, "cycle": "hourly"})
    assert hourly.json()["amount_cents"] == 1
    assert balance(runtime, person) == 1000
    reader = api.as_(person.token)
    assert reader.post("/api/billing/quotes", json={"action": "create"}).status_code == 422
    sub_id = start(runtime, person, price=600, now=datetime(2026, 3, 1, tzinfo=UTC))
    mid = client.post("/api/billing/quotes", json={"action": "delete", "subscription_id": sub_id,
                                                   "at": "2026-03-16T12:00:00Z"})
    assert mid.json()["amount_cents"] == -300
    other = make_user(runtime, "stranger@example.com")
    assert api.as_(other.token).post("/api/billing/quotes", json={"action": "delete", "subscription_id": sub_id}
                                     ).status_code == 404
