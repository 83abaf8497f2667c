"""Integer money: formatting, half-up rounding, conversion, discounts, hourly charges and the price arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloudlet.billing.pricing import quote
from cloudlet.billing.schemas import OverrideKind, PriceOverride, RateRead
from cloudlet.catalog.schemas import CycleRead, PlanRead
from cloudlet.kit import money
from cloudlet.kit.errors import Invalid

monthly_prices = st.integers(min_value=0, max_value=10**9)
bps = st.integers(min_value=0, max_value=10_000)
rates = st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal(100_000), places=8, allow_nan=False,
                    allow_infinity=False)


def test_amounts_format_as_the_references_show_them() -> None:
    assert money.format_amount(600, "USD") == "6.00"
    assert money.format_amount(-50, "USD") == "-0.50"
    assert money.format_amount(1500, "JPY") == "1500"
    assert money.format_amount(1234, "KWD") == "1.234"
    assert money.format_hourly(600, "USD") == "0.0082"  # CyberPanel's Starter at 6.00
    assert money.format_hourly(1200, "USD") == "0.0164"  # and Basic at 12.00


def test_parsing_is_exact_and_rounds_half_up() -> None:
    assert money.to_minor("6.00", "USD") == 600
    assert money.to_minor("0.005", "USD") == 1
    assert money.to_minor("-0.005", "USD") == -1
    assert money.to_minor("0.0049", "USD") == 0
    with pytest.raises(Invalid):
        money.to_minor("6.005", "USD", strict=True)
    with pytest.raises(Invalid):
        money.to_minor("six", "USD")
    with pytest.raises(Invalid):
        money.minor_units("XYZ")


def test_money_refuses_floats_and_mixed_currencies() -> None:
    with pytest.raises(TypeError):
        money.Money(6.0, "USD")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cannot combine"):
        _ = money.Money(100, "USD") + money.Money(100, "SAR")
    assert money.Money(100, "USD") + money.Money(250, "USD") == money.Money(350, "USD")
    assert str(money.Money.parse("12.5", "USD")) == "12.50"


def test_conversion_goes_through_the_rate_once_and_rounds_half_up() -> None:
    assert money.convert(600, Decimal("3.75"), source="USD", target="SAR") == 2250
    assert money.convert(1, Decimal("0.5"), source="USD", target="EGP") == 1  # 0.5 halala rounds up
    assert money.convert(600, Decimal("151.237"), source="USD", target="JPY") == 907  # 907.422 yen
    assert money.convert(600, Decimal("0.3075"), source="USD", target="KWD") == 1845  # 1.845 KWD
    assert money.convert(600, Decimal(1), source="USD", target="USD") == 600


@given(st.integers(min_value=-(10**12), max_value=10**12), st.integers(min_value=1, max_value=10**6))
def test_integer_half_up_division_matches_decimal(numerator: int, denominator: int) -> None:
    expected = (Decimal(numerator) / Decimal(denominator)).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    assert money.div_half_up(numerator, denominator) == int(expected)


@given(monthly_prices, bps)
def test_a_discount_never_raises_a_price_and_is_exact(amount: int, discount: int) -> None:
    discounted = money.apply_discount(amount, discount)
    assert 0 <= discounted <= amount
    exact = Decimal(amount) * (10_000 - discount) / 10_000
    assert abs(Decimal(discounted) - exact) <= Decimal("0.5")


@given(monthly_prices, st.integers(min_value=0, max_value=2000))
def test_hourly_billing_charges_started_hours_and_never_passes_the_monthly_price(monthly: int, hours: int) -> None:
    total = money.hourly_cumulative(monthly, hours)
    assert total <= monthly
    assert total >= min(monthly, Decimal(hours * monthly) / 730)  # never less than the exact share
    assert total == sum(money.hourly_charge(monthly, h) for h in range(1, hours + 1))
    if hours:
        charge = money.hourly_charge(monthly, hours)
        assert 0 <= charge <= -(-monthly // 730)
    if hours >= 730:
        assert total == monthly


def test_a_month_of_hours_costs_exactly_the_monthly_price() -> None:
    charges = [money.hourly_charge(600, h) for h in range(1, 731)]
    assert sum(charges) == 600
    assert charges[0] == 1  # the first started hour is never free
    assert money.hourly_charge(600, 731) == 0


def _plan(price: int) -> PlanRead:
    return PlanRead(id=1, code="scout-1", name="Scout 1", category="standard", vcpu=1, ram_mb=1024, disk_gb=25,
                    bandwidth_gb=1000, monthly_price_cents=price, monthly_price=money.format_amount(price, "USD"),
                    hourly_price=money.format_hourly(price, "USD"), is_active=True, regions=[], sort_order=0)


def _cycle(code: str, months: int, discount: int) -> CycleRead:
    return CycleRead(id=1, code=code, name=code, months=months, discount_bps=discount, is_active=True, sort_order=0)


def _rate(currency: str, value: Decimal) -> RateRead:
    return RateRead(currency=currency, rate=value, minor_units=money.minor_units(currency), source="test",
                    fetched_at=datetime(2026, 1, 1, tzinfo=UTC))


@given(monthly_prices, st.integers(min_value=1, max_value=36), bps, rates, st.sampled_from(["SAR", "EGP", "JPY"]))
def test_a_cycle_price_is_the_discounted_usd_total_converted_once(
        price: int, months: int, discount: int, rate: Decimal, currency: str) -> None:
    cycle = _cycle("c", months, discount)
    quoted = quote(_plan(price), cycle, _rate(currency, rate), None)
    assert quoted.amount_usd == money.apply_discount(price * months, discount)
    assert quoted.amount_usd <= price * months
    exact = Decimal(quoted.amount_usd) * rate * Decimal(10) ** (money.minor_units(currency) - 2)
    assert abs(Decimal(quoted.amount) - exact) <= Decimal("0.5")
    assert quoted.currency == currency and quoted.rate == rate and quoted.rate_fetched_at is not None


@given(monthly_prices, bps, st.integers(min_value=0, max_value=10**9))
def test_a_project_price_replaces_the_list_price_before_the_cycle_discount(
        price: int, discount: int, fixed: int) -> None:
    yearly = _cycle("yearly", 12, 1000)
    usd = _rate("USD", Decimal(1))
    off = quote(_plan(price), yearly, usd, PriceOverride(kind=OverrideKind.DISCOUNT, discount_bps=discount,
                                                        monthly_price_cents=None))
    assert off.monthly == money.apply_discount(price, discount)
    assert off.amount == money.apply_discount(off.monthly * 12, 1000)
    assert off.list_monthly == price
    pinned = quote(_plan(price), yearly, usd, PriceOverride(kind=OverrideKind.FIXED, discount_bps=None,
                                                           monthly_price_cents=fixed))
    assert pinned.monthly == fixed
    assert pinned.amount == money.apply_discount(fixed * 12, 1000)
    assert pinned.hourly_cumulative(10_000) == fixed
