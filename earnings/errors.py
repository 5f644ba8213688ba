from __future__ import annotations

from enum import StrEnum

from infra.errors import DomainError
from infra.money import is_currency


class EarningsErrorCode(StrEnum):
    NOT_FOUND = "NOT_FOUND"
    REQUIRED = "REQUIRED"
    TOO_LONG = "TOO_LONG"
    DUPLICATE_NAME = "DUPLICATE_NAME"
    INVALID_CURRENCY = "INVALID_CURRENCY"
    INVALID_AMOUNT = "INVALID_AMOUNT"
    NEGATIVE_RATE = "NEGATIVE_RATE"
    INVALID_RATE = "INVALID_RATE"
    INVALID_TIERS = "INVALID_TIERS"
    OVERLAPPING_TIERS = "OVERLAPPING_TIERS"
    INVALID_GATE = "INVALID_GATE"
    INVALID_SPIFF = "INVALID_SPIFF"
    SPIFF_ENDS_BEFORE_START = "SPIFF_ENDS_BEFORE_START"
    INVALID_PERIOD = "INVALID_PERIOD"
    EFFECTIVE_BEFORE_PAID_PERIOD = "EFFECTIVE_BEFORE_PAID_PERIOD"
    EFFECTIVE_BEFORE_CURRENT_VERSION = "EFFECTIVE_BEFORE_CURRENT_VERSION"
    PERIOD_NOT_ENDED = "PERIOD_NOT_ENDED"
    INVALID_STATUS = "INVALID_STATUS"
    PAYOUT_HELD = "PAYOUT_HELD"
    HOLD_ALREADY_RELEASED = "HOLD_ALREADY_RELEASED"
    HOLD_CONDITION_PERSISTS = "HOLD_CONDITION_PERSISTS"
    INVALID_FACTOR = "INVALID_FACTOR"
    INVALID_BANK_ACCOUNT = "INVALID_BANK_ACCOUNT"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"


def currency_error(currency: str, field: str = "currency") -> DomainError | None:
    """The error for a code that is not an ISO 4217 currency, else None."""
    if is_currency(currency):
        return None
    return DomainError(
        EarningsErrorCode.INVALID_CURRENCY, "Use an ISO 4217 currency code like USD.", field
    )
