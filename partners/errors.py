from enum import StrEnum


class TenancyErrorCode(StrEnum):
    NOT_FOUND = "NOT_FOUND"
    INVALID = "INVALID"
    TOO_LONG = "TOO_LONG"
    REQUIRED = "REQUIRED"
    DUPLICATE = "DUPLICATE"
    ALREADY_REVOKED = "ALREADY_REVOKED"
    INVALID_ROLE = "INVALID_ROLE"


class GroupErrorCode(StrEnum):
    """Partner groups and program tiers (partners/groups.py)."""

    NOT_FOUND = "NOT_FOUND"
    REQUIRED = "REQUIRED"
    TOO_LONG = "TOO_LONG"
    DUPLICATE_NAME = "DUPLICATE_NAME"
    UNKNOWN_ATTRIBUTE = "UNKNOWN_ATTRIBUTE"
    INVALID_RULE = "INVALID_RULE"
    ARCHIVED = "ARCHIVED"
    INVALID_TIER = "INVALID_TIER"
    UNCHANGED = "UNCHANGED"
