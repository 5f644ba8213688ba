"""Money in the API: integer minor units (as a 53-bit-safe scalar) plus decimal strings."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, NamedTuple, NewType

import strawberry
from graphql import IntValueNode, ValueNode
from strawberry.types.scalar import ScalarDefinition

from infra.errors import DomainError
from infra.money import MAX_MINOR, Money, parse_decimal, to_decimal_string

MinorUnits = NewType("MinorUnits", int)


def _parse_minor(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("MinorUnits must be a JSON integer")
    if abs(value) > MAX_MINOR:
        raise ValueError("MinorUnits out of range")
    return value


def _parse_minor_literal(node: ValueNode, _variables: dict[str, Any] | None = None) -> int:
    if not isinstance(node, IntValueNode):
        raise ValueError("MinorUnits must be an integer")
    return _parse_minor(int(node.value))


SCALARS: dict[object, ScalarDefinition] = {
    MinorUnits: strawberry.scalar(
        name="MinorUnits",
        description="An amount in the currency's minor units (cents), as a JSON integer "
        "(exact up to 2^53, beyond GraphQL's 32-bit Int).",
        serialize=int,
        parse_value=_parse_minor,
        parse_literal=_parse_minor_literal,
    )
}


@strawberry.type(name="Money", description="An amount of money in one currency.")
class MoneyType:
    amount_minor: MinorUnits = strawberry.field(description="In minor units, e.g. cents.")
    currency: str = strawberry.field(description="ISO 4217 code.")

    @strawberry.field(description="As a decimal string, e.g. '4600.00'.")
    def amount(self) -> str:
        return to_decimal_string(int(self.amount_minor), self.currency)

    @strawberry.field(description="For display, e.g. '4,600.00 USD'.")
    def formatted(self) -> str:
        return Money(int(self.amount_minor), self.currency).format()

    @classmethod
    def of(cls, amount_minor: int, currency: str) -> MoneyType:
        return cls(amount_minor=MinorUnits(amount_minor), currency=currency)


@strawberry.input(description="An amount as a decimal string in a currency.")
class MoneyInput:
    amount: str = strawberry.field(description="Decimal string, e.g. '4600.00'.")
    currency: str = strawberry.field(description="ISO 4217 code, e.g. 'USD'.")

    def parse(self, field: str, code: StrEnum) -> Amount:
        """Minor units and the upper-cased currency code (judged by the service, at
        ``<field>.currency``). A bad decimal is a DomainError(code) at ``<field>.amount``:
        the one rule for every money input."""
        currency = self.currency.strip().upper()
        try:
            return Amount(parse_decimal(self.amount, currency), currency)
        except ValueError as exc:
            raise DomainError(code, f"Not a valid amount: {exc}.", f"{field}.amount") from exc


class Amount(NamedTuple):
    """A parsed MoneyInput."""

    minor: int
    currency: str
