"""Who may do what with subscriptions. Row-level: ``repository.readable_*``."""

from __future__ import annotations

from enum import StrEnum

from partners.policy import FINANCE_OR_ADMIN, PARTNER_USERS, VENDOR_STAFF, Policy


class SubscriptionOp(StrEnum):
    # The billing system's changes (also what `channelboard subscriptions import` needs).
    RENEW = "subscriptionRenew"
    EXPAND = "subscriptionExpand"
    CONTRACT = "subscriptionContract"
    CANCEL = "subscriptionCancel"
    READ = "subscriptions"
    RENEWALS_READ = "renewalsDue"
    RETENTION_READ = "netRevenueRetention"


SUBSCRIPTIONS = Policy[SubscriptionOp](
    {
        SubscriptionOp.RENEW: FINANCE_OR_ADMIN,
        SubscriptionOp.EXPAND: FINANCE_OR_ADMIN,
        SubscriptionOp.CONTRACT: FINANCE_OR_ADMIN,
        SubscriptionOp.CANCEL: FINANCE_OR_ADMIN,
        SubscriptionOp.READ: VENDOR_STAFF | PARTNER_USERS,
        SubscriptionOp.RENEWALS_READ: VENDOR_STAFF | PARTNER_USERS,
        SubscriptionOp.RETENTION_READ: VENDOR_STAFF | PARTNER_USERS,
    }
)

# The operation each kind of billing change needs.
REPORT_OPS = {
    "RENEWED": SubscriptionOp.RENEW,
    "EXPANDED": SubscriptionOp.EXPAND,
    "CONTRACTED": SubscriptionOp.CONTRACT,
    "CANCELLED": SubscriptionOp.CANCEL,
}
