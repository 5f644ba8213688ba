from __future__ import annotations

from enum import StrEnum


class ForecastErrorCode(StrEnum):
    INVALID_CHARACTERS = "INVALID_CHARACTERS"  # infra.text: control/bidi characters
    INVALID_QUARTER = "INVALID_QUARTER"  # not "YYYY-Qn"
    QUARTER_STARTED = "QUARTER_STARTED"  # the quarter is under way: no more revisions
    QUARTER_CLOSED = "QUARTER_CLOSED"  # the quarter has ended
    INVALID_AMOUNT = "INVALID_AMOUNT"  # not a decimal amount in the currency's minor unit
    NEGATIVE_AMOUNT = "NEGATIVE_AMOUNT"
    AMOUNT_TOO_LARGE = "AMOUNT_TOO_LARGE"
    BEST_CASE_BELOW_COMMIT = "BEST_CASE_BELOW_COMMIT"
    INVALID_CURRENCY = "INVALID_CURRENCY"
    CURRENCY_MISMATCH = "CURRENCY_MISMATCH"  # a line in another currency than the forecast
    UNKNOWN_PRODUCT_LINE = "UNKNOWN_PRODUCT_LINE"
    DUPLICATE_PRODUCT_LINE = "DUPLICATE_PRODUCT_LINE"
    NO_LINES = "NO_LINES"
    TOO_MANY_LINES = "TOO_MANY_LINES"
    TOO_LONG = "TOO_LONG"
    NOT_FOUND = "NOT_FOUND"  # a partner the caller may not see reads like none


class GuardrailErrorCode(StrEnum):
    INVALID_CHARACTERS = "INVALID_CHARACTERS"  # infra.text: control/bidi characters
    NOT_FOUND = "NOT_FOUND"
    INVALID_SHARE = "INVALID_SHARE"  # max share outside 1..10000 bp
    INVALID_TOP_N = "INVALID_TOP_N"  # top N outside 1..100, or not 1 for the top partner
    SCOPE_VALUE_REQUIRED = "SCOPE_VALUE_REQUIRED"  # a region or group scope names none
    SCOPE_VALUE_NOT_ALLOWED = "SCOPE_VALUE_NOT_ALLOWED"  # OVERALL names one
    UNKNOWN_GROUP = "UNKNOWN_GROUP"
    MANAGED_GROUP = "MANAGED_GROUP"  # a pilot's arm: not a guardrail's scope
    INVALID_CURRENCY = "INVALID_CURRENCY"


class ExportErrorCode(StrEnum):
    INVALID_RANGE = "INVALID_RANGE"  # ``since`` not before ``until``
