"""The codes a notifications mutation answers in ``userErrors``."""

from __future__ import annotations

from enum import StrEnum


class NotificationErrorCode(StrEnum):
    NOT_FOUND = "NOT_FOUND"  # no such notification among the caller's own
    NOT_A_USER = "NOT_A_USER"  # an API key has no inbox or preferences
    INVALID_LOCALE = "INVALID_LOCALE"  # not one of the languages notifications are written in
    INVALID_TIME_ZONE = "INVALID_TIME_ZONE"  # not an IANA time zone
    INVALID_DIGEST_HOUR = "INVALID_DIGEST_HOUR"  # not 0..23
    DUPLICATE_CATEGORY = "DUPLICATE_CATEGORY"  # a category given twice
