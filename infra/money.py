"""Money: integer minor units with an ISO 4217 currency code. Never floats."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from infra.codes import is_currency, minor_units

__all__ = [
    "Money",
    "exponent",
    "is_currency",
    "MAX_MINOR",
    "parse_decimal",
    "split_minor",
    "to_decimal_string",
]


def exponent(currency: str) -> int:
    """The currency's ISO 4217 minor units. An unknown code parses as 2 places so that an
    amount and its currency are judged apart (the services refuse the code itself)."""
    units = minor_units(currency)
    return 2 if units is None else units


@dataclass(frozen=True, order=True)
class Money:
    amount: int  # minor units
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount, int) or isinstance(self.amount, bool):
            raise TypeError("money amounts are integers in minor units")
        if not is_currency(self.currency):
            raise ValueError(f"not an ISO 4217 currency code: {self.currency!r}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise ValueError(f"cannot mix {self.currency} and {other.currency}")

    def format(self) -> str:
        """'25,400.00 USD' style, for explanations and logs."""
        exp = exponent(self.currency)
        sign = "-" if self.amount < 0 else ""
        whole, frac = divmod(abs(self.amount), 10**exp) if exp else (abs(self.amount), 0)
        text = f"{whole:,}" + (f".{frac:0{exp}d}" if exp else "")
        return f"{sign}{text} {self.currency}"


def split_minor(amount_minor: int, weights: Sequence[int]) -> list[int]:
    """Share an amount of minor units over parts in proportion to their (non-negative)
    weights, so that the parts add up to the amount exactly: each part is rounded down
    (``amount * weight // total``) and what the rounding leaves goes to the **last** part;
    with no weight at all, the last part takes everything. The one rule for splitting an
    amount over lines (a won deal's value over its lines, an approved claim's over its
    SKUs); the ledger then rounds each entry it computes from a line once (earnings.rounding).
    """
    if not weights:
        return []
    total = sum(weights)
    shares = [amount_minor * w // total if total else 0 for w in weights]
    shares[-1] += amount_minor - sum(shares)
    return shares


# The largest amount (minor units) the API carries: the MinorUnits scalar is a JSON integer,
# exact in every client (a double) up to 2**53.
MAX_MINOR = 2**53


def parse_decimal(amount: str, currency: str) -> int:
    """'4600.00' in USD -> 460000 minor units. Raises ValueError for anything that is not a
    plain decimal with at most the currency's number of fraction digits, or that is beyond
    ``MAX_MINOR`` minor units (15 digits of a 2-decimal currency went to 10**17: kept, and
    answered as a number no JSON client reads exactly)."""
    from decimal import Decimal, InvalidOperation  # noqa: PLC0415

    text = amount.strip()
    if not re.fullmatch(r"-?[0-9]{1,15}(\.[0-9]+)?", text):
        raise ValueError("not a decimal amount")
    try:
        value = Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - the pattern rules it out
        raise ValueError("not a decimal amount") from exc
    exp = exponent(currency)
    scaled = value.scaleb(exp)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{currency} has {exp} decimal places")
    if abs(scaled) > MAX_MINOR:
        raise ValueError(f"at most {to_decimal_string(MAX_MINOR, currency)}")
    return int(scaled)


def to_decimal_string(amount_minor: int, currency: str) -> str:
    exp = exponent(currency)
    if exp == 0:
        return str(amount_minor)
    sign = "-" if amount_minor < 0 else ""
    whole, frac = divmod(abs(amount_minor), 10**exp)
    return f"{sign}{whole}.{frac:0{exp}d}"


def divide_rounded(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half away from zero (denominator > 0): the ledger's
    one rounding rule (``earnings/rounding.py``), here so that domains below earnings
    (subscriptions' annual recurring revenue) round the same way."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    quotient, remainder = divmod(abs(numerator), denominator)
    if remainder * 2 >= denominator:
        quotient += 1
    return quotient if numerator >= 0 else -quotient
