"""Who may do what with contests (row-level visibility: ``repository``)."""

from __future__ import annotations

from enum import StrEnum

from partners.policy import VENDOR_ADMIN, Policy


class ContestOp(StrEnum):
    CREATE = "contestCreate"
    UPDATE = "contestUpdate"
    PUBLISH = "contestPublish"
    CANCEL = "contestCancel"


CONTESTS = Policy[ContestOp](
    {
        ContestOp.CREATE: VENDOR_ADMIN,
        ContestOp.UPDATE: VENDOR_ADMIN,
        ContestOp.PUBLISH: VENDOR_ADMIN,
        ContestOp.CANCEL: VENDOR_ADMIN,
    }
)
