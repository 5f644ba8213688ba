"""Who may do what with notifications: every signed-in user manages their own inbox and
preferences (rows are the caller's own: ``repository.readable_notifications``; reading the
inbox needs only a signed-in caller)."""

from __future__ import annotations

from enum import StrEnum

from partners.policy import PARTNER_USERS, VENDOR_STAFF, Policy

EVERYONE = VENDOR_STAFF | PARTNER_USERS


class NotificationOp(StrEnum):
    MARK_READ = "notificationMarkRead"
    MARK_ALL_READ = "notificationMarkAllRead"
    PREFERENCES_UPDATE = "notificationPreferencesUpdate"


NOTIFICATIONS = Policy[NotificationOp]({op: EVERYONE for op in NotificationOp})
