"""Who may do what with contests (row-level visibility: ``repository``)."""

from __future__ import annotations

from enum import StrEnum

from partners.policy import FINANCE, VENDOR_ADMIN, Policy


class ContestOp(StrEnum):
    CREATE = "contestCreate"
    UPDATE = "contestUpdate"
    PUBLISH = "contestPublish"
    CANCEL = "contestCancel"
    APPROVE_PRIZE = "contestPrizeApprove"
    DISPLAY_KEY_CREATE = "displayKeyCreate"
    DISPLAY_KEY_REVOKE = "displayKeyRevoke"
    DISPLAY_KEYS_READ = "displayKeys"


CONTESTS = Policy[ContestOp](
    {
        ContestOp.CREATE: VENDOR_ADMIN,
        ContestOp.UPDATE: VENDOR_ADMIN,
        ContestOp.PUBLISH: VENDOR_ADMIN,
        ContestOp.CANCEL: VENDOR_ADMIN,
        # Money leaves the vendor: finance decides, as it approves payouts.
        ContestOp.APPROVE_PRIZE: FINANCE,
        ContestOp.DISPLAY_KEY_CREATE: VENDOR_ADMIN,
        ContestOp.DISPLAY_KEY_REVOKE: VENDOR_ADMIN,
        ContestOp.DISPLAY_KEYS_READ: VENDOR_ADMIN,
    }
)
