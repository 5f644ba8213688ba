from __future__ import annotations

from enum import StrEnum


class RuleErrorCode(StrEnum):
    INVALID_CHARACTERS = "INVALID_CHARACTERS"  # infra.text: control/bidi characters
    NOT_FOUND = "NOT_FOUND"
    REQUIRED = "REQUIRED"
    TOO_LONG = "TOO_LONG"
    DUPLICATE_NAME = "DUPLICATE_NAME"
    CONDITION_INVALID = "CONDITION_INVALID"  # does not compile: the message gives the position
    UNKNOWN_SIGNAL = "UNKNOWN_SIGNAL"  # the message lists the valid names
    NOT_BOOLEAN = "NOT_BOOLEAN"
    NO_ACTIONS = "NO_ACTIONS"
    INVALID_ACTION = "INVALID_ACTION"
    INVALID_WINDOW = "INVALID_WINDOW"
    OVERLAY_BEYOND_CAP = "OVERLAY_BEYOND_CAP"
    NEGATIVE_CAP = "NEGATIVE_CAP"
    INVALID_CURRENCY = "INVALID_CURRENCY"
    SELF_APPROVAL = "SELF_APPROVAL"
    NOT_A_DRAFT = "NOT_A_DRAFT"
    INVALID_STATUS = "INVALID_STATUS"
    NOT_AN_EARLIER_VERSION = "NOT_AN_EARLIER_VERSION"
    UNKNOWN_TEMPLATE = "UNKNOWN_TEMPLATE"
    INVALID_DATE = "INVALID_DATE"
    INVALID_AMOUNT = "INVALID_AMOUNT"
    MANAGED_GROUP = "MANAGED_GROUP"  # a pilot's arm: no rule places partners in it
    CURRENCY_MISMATCH = "CURRENCY_MISMATCH"  # an overlay's program pays in another currency
    NOT_PENDING = "NOT_PENDING"  # a budget change already approved, cancelled or replaced
    BUDGET_CHANGED = "BUDGET_CHANGED"  # the rule's budget is no longer the change's "from"
    # An API key with no known maker (whose eyes?), or approving (a person approves).
    PERSON_REQUIRED = "PERSON_REQUIRED"
