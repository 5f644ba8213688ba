"""Roles and the authenticated principal every service takes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Role(StrEnum):
    VENDOR_ADMIN = "VENDOR_ADMIN"
    CHANNEL_MANAGER = "CHANNEL_MANAGER"
    FINANCE = "FINANCE"
    PARTNER_ADMIN = "PARTNER_ADMIN"
    PARTNER_REP = "PARTNER_REP"
    # Never a user's: a display key's screen (leaderboards.display_keys), which reads its
    # contests' boards as a partner viewer does and nothing else.
    DISPLAY = "DISPLAY"

    @property
    def is_vendor_staff(self) -> bool:
        return self in VENDOR_ROLES

    @property
    def is_partner(self) -> bool:
        return self in PARTNER_ROLES


VENDOR_ROLES = frozenset({Role.VENDOR_ADMIN, Role.CHANNEL_MANAGER, Role.FINANCE})
PARTNER_ROLES = frozenset({Role.PARTNER_ADMIN, Role.PARTNER_REP})
USER_ROLES = VENDOR_ROLES | PARTNER_ROLES  # the roles a user (or an API key) may have


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user (from a JWT), a vendor integration (from an API key), or an
    office screen (from a display key: role DISPLAY, limited to ``contest_ids``)."""

    vendor_id: uuid.UUID
    role: Role
    user_id: uuid.UUID | None = None
    partner_id: uuid.UUID | None = None
    email: str | None = None
    api_key_id: uuid.UUID | None = None
    expires_at: datetime | None = None
    # A command run by an operator acts without a user or a key: its login, for the audit log.
    operator: str | None = None
    display_key_id: uuid.UUID | None = None
    contest_ids: frozenset[uuid.UUID] = frozenset()

    def __post_init__(self) -> None:
        if (self.role is Role.DISPLAY) != (self.display_key_id is not None):
            raise ValueError("a display key, and only one, has the DISPLAY role")
        if self.role.is_partner and self.partner_id is None:
            raise ValueError("a partner role needs a partner")
        if self.role.is_vendor_staff and self.partner_id is not None:
            raise ValueError("vendor staff belong to no partner")

    @property
    def is_vendor_staff(self) -> bool:
        return self.role.is_vendor_staff

    @property
    def caller(self) -> str:
        """Who sends the request, for what belongs to a caller (idempotency keys): the user,
        or the API key."""
        if self.user_id is not None:
            return f"user:{self.user_id}"
        if self.display_key_id is not None:
            return f"display_key:{self.display_key_id}"
        assert self.api_key_id is not None, "a principal is a user or an API key"
        return f"api_key:{self.api_key_id}"

    @property
    def is_partner(self) -> bool:
        return self.role.is_partner

    @property
    def is_display(self) -> bool:
        return self.role is Role.DISPLAY
