"""Money as integers of minor units (cents, halalas, piastres); Decimal only at the edges, never floats.

Every amount that is stored or added up is an `int` of minor units of one currency. Decimals appear
when an amount is parsed from or shown to a person ("6.00", "0.0082") and when a stored exchange rate
multiplies an amount; the result is rounded half-up back to whole minor units at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal, InvalidOperation

from cloudlet.kit.errors import Invalid

BASE_CURRENCY = "USD"
HOURS_PER_MONTH = 730  # 365 * 24 / 12, the month every hourly cloud price is quoted against
BPS = 10_000  # basis points in a whole
HOURLY_PLACES = 4  # hourly rates are shown to 4 places, as CyberPanel does ("0.0082")

# ISO 4217 minor units of the currencies a catalogue is likely to quote.
MINOR_UNITS: dict[str, int] = {
    "USD": 2, "EUR": 2, "GBP": 2, "CHF": 2, "CAD": 2, "AUD": 2, "NOK": 2, "SEK": 2, "DKK": 2, "PLN": 2,
    "SAR": 2, "AED": 2, "QAR": 2, "EGP": 2, "TRY": 2, "INR": 2, "BRL": 2, "ZAR": 2, "CNY": 2, "SGD": 2,
    "JPY": 0, "KRW": 0, "CLP": 0, "ISK": 0, "VND": 0,
    "KWD": 3, "BHD": 3, "OMR": 3, "JOD": 3, "TND": 3,
}


def minor_units(currency: str) -> int:
    """How many decimal places the currency's minor unit has (2 for USD); Invalid for an unknown code."""
    try:
        return MINOR_UNITS[currency]
    except KeyError:
        raise Invalid("currency", f"Unknown currency {currency!r}.", code="UNKNOWN_CURRENCY") from None


def normalize_currency(code: str) -> str:
    """An ISO 4217 code in upper case, checked against the known currencies."""
    upper = code.strip().upper()
    minor_units(upper)
    return upper


def round_half_up(value: Decimal, places: int = 0) -> Decimal:
    """Round to `places` decimals, halves away from zero (the way people and invoices round)."""
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def div_half_up(numerator: int, denominator: int) -> int:
    """Integer division rounded half away from zero, exactly (no Decimal context limits)."""
    if denominator == 0:
        raise ZeroDivisionError("division by zero")
    if denominator < 0:
        numerator, denominator = -numerator, -denominator
    quotient, remainder = divmod(abs(numerator), denominator)
    if 2 * remainder >= denominator:
        quotient += 1
    return quotient if numerator >= 0 else -quotient


def ceil_div(numerator: int, denominator: int) -> int:
    """Integer division rounded up (towards positive infinity), for positive denominators."""
    return -((-numerator) // denominator)


def to_minor(value: Decimal | int | str, currency: str, *, strict: bool = False) -> int:
    """A decimal amount of major units ("6.00") as minor units (600), rounded half-up.

    With strict=True an amount finer than the currency's minor unit ("6.005" USD) is refused.
    """
    places = minor_units(currency)
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except InvalidOperation:
        raise Invalid("amount", f"{value!r} is not a number.") from None
    if not amount.is_finite():
        raise Invalid("amount", f"{value!r} is not a finite number.")
    scaled = amount.scaleb(places)
    if strict and scaled != scaled.to_integral_value():
        raise Invalid("amount", f"{currency} amounts have at most {places} decimal places.")
    return int(scaled.to_integral_value(rounding=ROUND_HALF_UP))


def to_decimal(amount: int, currency: str) -> Decimal:
    """Minor units (600) as an exact Decimal of major units (Decimal("6.00"))."""
    places = minor_units(currency)
    return Decimal(amount).scaleb(-places).quantize(Decimal(1).scaleb(-places))


def format_amount(amount: int, currency: str) -> str:
    """Minor units as the plain decimal string APIs show ("6.00", "-0.50", "1500" for JPY)."""
    return str(to_decimal(amount, currency))


def format_decimal(value: Decimal, places: int) -> str:
    """A Decimal rounded half-up and shown with exactly `places` decimals ("0.0082")."""
    return str(round_half_up(value, places))


def apply_discount(amount: int, discount_bps: int) -> int:
    """The amount less a discount in basis points (1250 = 12.5%), rounded half-up to a minor unit."""
    if not 0 <= discount_bps <= BPS:
        raise Invalid("discount_bps", "A discount is between 0 and 10000 basis points.")
    return div_half_up(amount * (BPS - discount_bps), BPS)


def convert(amount: int, rate: Decimal, *, source: str, target: str) -> int:
    """Minor units of `source` in minor units of `target`, where 1 source unit = `rate` target units.

    One multiplication of exact values, then one half-up rounding to the target's minor unit.
    """
    if source == target:
        return amount
    if rate <= 0:
        raise Invalid("rate", "An exchange rate must be positive.")
    exact = Decimal(amount) * rate
    shift = minor_units(target) - minor_units(source)
    return int(exact.scaleb(shift).to_integral_value(rounding=ROUND_HALF_UP))


def hourly_rate(monthly: int, currency: str) -> Decimal:
    """The hourly price in major units, monthly / 730, unrounded (show it with format_hourly)."""
    places = minor_units(currency)
    return Decimal(monthly).scaleb(-places) / Decimal(HOURS_PER_MONTH)


def format_hourly(monthly: int, currency: str) -> str:
    """The hourly price as CyberPanel shows it: 4 decimals, half-up ("6.00"/month -> "0.0082")."""
    return format_decimal(hourly_rate(monthly, currency), HOURLY_PLACES)


def hourly_cumulative(monthly: int, hours: int) -> int:
    """What `hours` started hours cost in all, in minor units: min(monthly, ceil(hours * monthly / 730)).

    Rounded up so a started hour is never free in total, and capped so a month never costs more
    than the monthly price.
    """
    if monthly < 0 or hours < 0:
        raise ValueError("monthly price and hours are never negative")
    return min(monthly, ceil_div(hours * monthly, HOURS_PER_MONTH))


def hourly_charge(monthly: int, hour: int) -> int:
    """The charge for the `hour`-th started hour (1-based): the step in hourly_cumulative."""
    if hour < 1:
        raise ValueError("hours are counted from 1")
    return hourly_cumulative(monthly, hour) - hourly_cumulative(monthly, hour - 1)


def ceil_to_minor(value: Decimal, currency: str) -> int:
    """A decimal amount of major units rounded up to whole minor units."""
    return int(value.scaleb(minor_units(currency)).to_integral_value(rounding=ROUND_CEILING))


@dataclass(frozen=True, order=True)
class Money:
    """An amount of minor units in one currency; adding two currencies is a programming error."""

    amount: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise TypeError("Money holds an int of minor units, never a float or Decimal")
        minor_units(self.currency)

    @classmethod
    def parse(cls, value: Decimal | int | str, currency: str) -> Money:
        """Money from a decimal amount of major units, refusing sub-minor-unit precision."""
        return cls(to_minor(value, currency, strict=True), currency)

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def _same(self, other: Money) -> None:
        if self.currency != other.currency:
            raise ValueError(f"cannot combine {self.currency} with {other.currency}")

    @property
    def decimal(self) -> Decimal:
        """The amount in major units, exactly."""
        return to_decimal(self.amount, self.currency)

    def __str__(self) -> str:
        return format_amount(self.amount, self.currency)
