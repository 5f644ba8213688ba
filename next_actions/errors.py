from __future__ import annotations

from enum import StrEnum


class NextActionsErrorCode(StrEnum):
    NOT_FOUND = "NOT_FOUND"
    PARTNER_REQUIRED = "PARTNER_REQUIRED"
