"""Who may do what with subscriptions. Row-level: ``repository.readable_*``."""

from __future__ import annotations

from enum import StrEnum

from partners.policy import FINANCE_OR_ADMIN, PARTNER_USERS, VENDOR_ADMIN, VENDOR_STAFF, Policy


class SubscriptionOp(StrEnum):
    REPORT_CHANGE = "subscriptionChange"  # the billing system: renew, expand, contract, cancel
    IMPORT = "subscriptionImport"
    READ = "subscriptions"
    RENEWALS_READ = "renewalsDue"
    RETENTION_READ = "netRevenueRetention"


SUBSCRIPTIONS = Policy[SubscriptionOp](
    {
        SubscriptionOp.REPORT_CHANGE: FINANCE_OR_ADMIN,
        SubscriptionOp.IMPORT: VENDOR_ADMIN,
        SubscriptionOp.READ: VENDOR_STAFF | PARTNER_USERS,
        SubscriptionOp.RENEWALS_READ: VENDOR_STAFF | PARTNER_USERS,
        SubscriptionOp.RETENTION_READ: VENDOR_STAFF | PARTNER_USERS,
    }
)
