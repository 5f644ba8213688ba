from __future__ import annotations

from enum import StrEnum


class SignalsErrorCode(StrEnum):
    NOT_FOUND = "NOT_FOUND"
    INVALID_RANGE = "INVALID_RANGE"  # ``from`` after ``to``
    RANGE_TOO_LONG = "RANGE_TOO_LONG"  # more than MAX_RANGE_DAYS days
    PARTNER_REQUIRED = "PARTNER_REQUIRED"  # vendor staff must name the partner
    REP_REQUIRED = "REP_REQUIRED"  # only a partner rep's own rep is the default
