from __future__ import annotations

from enum import StrEnum


class WebhookErrorCode(StrEnum):
    INVALID_CHARACTERS = "INVALID_CHARACTERS"  # infra.text: control/bidi characters
    NOT_FOUND = "NOT_FOUND"
    INVALID_URL = "INVALID_URL"  # not an absolute http(s) URL (or credentials in it)
    TARGET_NOT_ALLOWED = "TARGET_NOT_ALLOWED"  # resolves to a private/loopback/... address
    TARGET_UNRESOLVABLE = "TARGET_UNRESOLVABLE"  # the host name does not resolve
    UNKNOWN_EVENT_TYPE = "UNKNOWN_EVENT_TYPE"
    NO_EVENT_TYPES = "NO_EVENT_TYPES"
    TOO_LONG = "TOO_LONG"
    ALREADY_DISABLED = "ALREADY_DISABLED"
    ALREADY_ENABLED = "ALREADY_ENABLED"
    INVALID_OVERLAP = "INVALID_OVERLAP"  # a rotation overlap outside 0 s .. 7 days
    REPLAY_TARGET_REQUIRED = "REPLAY_TARGET_REQUIRED"  # neither an event id nor a range
    REPLAY_TARGET_AMBIGUOUS = "REPLAY_TARGET_AMBIGUOUS"  # both an event id and a range
    INVALID_RANGE = "INVALID_RANGE"  # from after to, or in the future
    RANGE_TOO_LONG = "RANGE_TOO_LONG"  # more than MAX_REPLAY_RANGE
    ENDPOINT_DISABLED = "ENDPOINT_DISABLED"  # replay to a disabled endpoint
    TOO_MANY_ENDPOINTS = "TOO_MANY_ENDPOINTS"  # the vendor has MAX_ENDPOINTS already
