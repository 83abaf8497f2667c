"""How an alert rule's condition is judged over samples, without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cloudlet.alerts.models import Operator
from cloudlet.alerts.schemas import Sample
from cloudlet.alerts.service import SAMPLE_STALE, compare, held

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
FIVE = timedelta(minutes=5)


def series(*values: float, end: datetime = NOW) -> list[Sample]:
    """One sample a minute, the last ending at `end`, oldest first."""
    count = len(values)
    return [Sample(end - (count - i) * MINUTE, end - (count - i - 1) * MINUTE, v) for i, v in enumerate(values)]


def test_the_operators_compare_as_named() -> None:
    assert compare(Operator.GT, 91, 90) and not compare(Operator.GT, 90, 90)
    assert compare(Operator.GTE, 90, 90) and not compare(Operator.GTE, 89.9, 90)
    assert compare(Operator.LT, 1, 2) and not compare(Operator.LT, 2, 2)
    assert compare(Operator.LTE, 2, 2) and not compare(Operator.LTE, 2.1, 2)


def test_a_condition_holds_only_over_its_whole_duration() -> None:
    assert held(series(95, 95, 95, 95), Operator.GT, 90, FIVE, NOW) == (False, 95)  # four minutes of five
    assert held(series(95, 95, 95, 95, 95), Operator.GT, 90, FIVE, NOW) == (True, 95)
    assert held(series(95, 50, 95, 95, 95, 95), Operator.GT, 90, FIVE, NOW).holds is False  # broken by a dip
    assert held(series(50, 95, 95, 95, 95, 95), Operator.GT, 90, FIVE, NOW).holds is True
    assert held(series(95, 95, 95, 95, 95, 50), Operator.GT, 90, FIVE, NOW) == (False, 50)
    assert held(series(95), Operator.GT, 90, timedelta(0), NOW).holds is True


def test_no_sample_or_a_stale_one_holds_nothing() -> None:
    assert held([], Operator.GT, 90, timedelta(0), NOW) == (False, None)
    stale = series(95, 95, 95, 95, 95, 95, end=NOW - SAMPLE_STALE - MINUTE)
    assert held(stale, Operator.GT, 90, FIVE, NOW) == (False, None)


def test_a_gap_between_samples_breaks_the_run() -> None:
    before = series(95, 95, 95, end=NOW - 10 * MINUTE)  # the guest was stopped in between
    after = series(95, 95, 95)
    assert held(before + after, Operator.GT, 90, FIVE, NOW).holds is False
    assert held(before + after, Operator.GT, 90, 3 * MINUTE, NOW).holds is True
