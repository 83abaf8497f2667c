"""Proration and refunds: whatever the price, cycle and moments, the customer never pays more than
the time used is worth, and never gets back more than was paid."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from cloudlet.billing import proration
from cloudlet.kit import money

START = datetime(2026, 1, 1, tzinfo=UTC)
prices = st.integers(min_value=0, max_value=10_000_000)
months = st.sampled_from([1, 3, 6, 12, 24])
moments = st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 31),  # noqa: DTZ001  # hypothesis wants naive bounds
                       timezones=st.just(UTC))
fractions = st.fractions(min_value=0, max_value=1)


def at(start: datetime, end: datetime, share: Fraction) -> datetime:
    return start + (end - start) * float(share)


def worth(price: int, part: timedelta, whole: timedelta) -> Fraction:
    return Fraction(price) * Fraction(part // timedelta(microseconds=1), whole // timedelta(microseconds=1))


@given(prices, months, moments, fractions)
def test_a_refund_leaves_the_customer_paying_at_most_the_time_used(price: int, length: int, start: datetime,
                                                                    share: Fraction) -> None:
    end = proration.add_months(start, length)
    now = at(start, end, share)
    back = proration.refund(price, price, start, end, now)
    net = price - back
    assert 0 <= back <= price
    assert 0 <= net <= worth(price, now - start, end - start)


@given(prices, prices, months, moments, fractions, fractions)
def test_upgrade_then_deletion_never_charges_more_than_the_time_used(old: int, extra: int, length: int,
                                                                     start: datetime, up: Fraction,
                                                                     down: Fraction) -> None:
    new = old + extra
    end = proration.add_months(start, length)
    upgraded_at = at(start, end, up)
    deleted_at = max(upgraded_at, at(start, end, down))
    paid = old + proration.upgrade_charge(old, new, start, end, upgraded_at)
    back = proration.refund(new, paid, start, end, deleted_at)
    used = worth(old, upgraded_at - start, end - start) + worth(new, deleted_at - upgraded_at, end - start)
    assert 0 <= back <= paid
    assert 0 <= paid - back <= used


@given(prices, prices, months, moments, fractions)
def test_an_upgrade_charges_at_most_the_difference_for_the_rest_of_the_period(old: int, extra: int, length: int,
                                                                            start: datetime, share: Fraction) -> None:
    end = proration.add_months(start, length)
    now = at(start, end, share)
    charge = proration.upgrade_charge(old, old + extra, start, end, now)
    assert 0 <= charge <= extra
    assert charge <= worth(extra, end - now, end - start)


def test_a_deletion_right_after_payment_refunds_everything_and_at_the_end_nothing() -> None:
    end = proration.add_months(START, 1)
    assert proration.refund(1200, 1200, START, end, START) == 1200
    assert proration.refund(1200, 1200, START, end, end) == 0
    assert proration.refund(1200, 1200, START, end, end + timedelta(days=3)) == 0
    assert proration.refund(1200, 1200, START, end, START + (end - START) / 2) == 600


def test_cycles_keep_their_day_of_month_without_drifting() -> None:
    anchor = datetime(2026, 1, 31, 10, tzinfo=UTC)
    first = proration.first_period_end(anchor, 1, hourly=False)
    assert first == datetime(2026, 2, 28, 10, tzinfo=UTC)
    assert proration.period_end(anchor, first, 1) == datetime(2026, 3, 31, 10, tzinfo=UTC)
    assert proration.period_end(anchor, anchor, 12) == datetime(2027, 1, 31, 10, tzinfo=UTC)


@given(st.integers(min_value=0, max_value=1_000_000), moments)
def test_the_hours_of_a_month_never_cost_more_than_the_monthly_price(monthly: int, anchor: datetime) -> None:
    window_end = proration.add_months(anchor, 1)
    total, hour, count = 0, anchor, 0
    while hour < window_end:
        charge = proration.hourly_charge(monthly, anchor, hour)
        assert charge.window_start == anchor
        assert charge.amount >= 0
        total += charge.amount
        hour += proration.HOUR
        count += 1
    assert total == min(monthly, money.hourly_cumulative(monthly, count))
    assert total <= monthly
    # The next window starts again from the first hour.
    assert proration.hourly_charge(monthly, anchor, window_end).hour_index == 1


def test_a_started_hour_is_never_free_in_total() -> None:
    assert proration.hourly_charge(600, START, START).amount == 1  # 6.00/730 rounds up to a cent
    assert sum(proration.hourly_charge(600, START, START + proration.HOUR * h).amount for h in range(730)) == 600
