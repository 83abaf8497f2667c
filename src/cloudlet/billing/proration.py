"""The arithmetic of billing periods, on plain integers and timestamps (no database, no catalogue).

Rounding always favours the customer: a charge for part of a period rounds down and a refund of
the unused part rounds up, so what a customer pays in the end never exceeds what the time they
used is worth, and a refund never exceeds what was paid.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime, timedelta

from cloudlet.kit import money

HOUR = timedelta(hours=1)
_TICK = timedelta(microseconds=1)


def add_months(moment: datetime, months: int) -> datetime:
    """The same day and time `months` calendar months later, clamped to the month's last day."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def months_between(anchor: datetime, moment: datetime) -> int:
    """Whole calendar months from anchor's month to moment's month (ignoring days)."""
    return (moment.year - anchor.year) * 12 + moment.month - anchor.month


def period_end(anchor: datetime, current_end: datetime, months: int) -> datetime:
    """The end of the cycle of `months` that starts at current_end, counted from anchor so days never drift."""
    return add_months(anchor, months_between(anchor, current_end) + months)


def first_period_end(start: datetime, months: int, *, hourly: bool) -> datetime:
    """When a subscription started at `start` is first due again."""
    return start + HOUR if hourly else add_months(start, months)


def _ticks(delta: timedelta) -> int:
    return delta // _TICK


def _share(price: int, part: timedelta, whole: timedelta, *, round_up: bool) -> int:
    """price * part / whole in integer minor units, rounded the way asked, within [0, price]."""
    whole_ticks = _ticks(whole)
    if whole_ticks <= 0 or price <= 0:
        return 0
    part_ticks = min(max(_ticks(part), 0), whole_ticks)
    product = price * part_ticks
    value = -(-product // whole_ticks) if round_up else product // whole_ticks
    return min(max(value, 0), price)


def upgrade_charge(old_price: int, new_price: int, period_start: datetime, period_end_: datetime,
                   now: datetime) -> int:
    """The prorated difference for the rest of the period, rounded down (0 when nothing is left)."""
    if new_price <= old_price:
        return 0
    remaining = period_end_ - max(now, period_start)
    return _share(new_price - old_price, remaining, period_end_ - period_start, round_up=False)


def refund(price: int, paid: int, period_start: datetime, period_end_: datetime, now: datetime) -> int:
    """What an immediate deletion gives back: the unused part at the current price, rounded up,
    never more than was paid for the period and never below zero."""
    remaining = period_end_ - max(now, period_start)
    unused = _share(price, remaining, period_end_ - period_start, round_up=True)
    return min(max(paid, 0), unused)


@dataclass(frozen=True)
class HourCharge:
    """The charge for one started hour, which hour of its month window it is, and where that window starts."""

    hour_start: datetime
    amount: int
    hour_index: int
    window_start: datetime


def hourly_charge(monthly_price: int, anchor: datetime, hour_start: datetime) -> HourCharge:
    """The charge for the hour that starts at hour_start (whole hours after anchor).

    Hours are counted in month windows from the anchor (the cap's "month"); the n-th started hour
    of a window costs the step of min(monthly, ceil(n * monthly / 730)), so a window never costs
    more than the monthly price (kit.money's rule, the one the catalogue shows).
    """
    k = months_between(anchor, hour_start)
    window_start = add_months(anchor, k)
    if window_start > hour_start:
        window_start = add_months(anchor, k - 1)
    index = (hour_start - window_start) // HOUR + 1
    return HourCharge(hour_start, money.hourly_charge(monthly_price, index), index, window_start)
