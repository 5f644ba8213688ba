"""Who may do what with sale claims and the serial registry (row-level visibility:
``repository``)."""

from __future__ import annotations

from enum import StrEnum

from partners.policy import (
    FINANCE_OR_ADMIN,
    PARTNER_USERS,
    PARTNERS_AND_REVIEWERS,
    REVIEWERS,
    VENDOR_ADMIN,
    VENDOR_STAFF,
    Policy,
)


class SalesOp(StrEnum):
    CREATE_CLAIM = "saleClaimCreate"
    ATTACH_PROOF = "saleClaimAttachProof"
    APPROVE = "saleClaimApprove"
    REJECT = "saleClaimReject"
    REQUEST_PROOF = "saleClaimRequestProof"
    REVERSE = "saleClaimReverse"
    WATCH_CLAIMS = "saleClaimStateChanged"
    READ_SETTINGS = "salesSettings"
    UPDATE_SETTINGS = "salesSettingsUpdate"
    IMPORT_SERIALS = "serialsImport"
    READ_SALE_EVENTS = "saleEvents"


SALES = Policy[SalesOp](
    {
        SalesOp.CREATE_CLAIM: PARTNER_USERS,
        SalesOp.ATTACH_PROOF: PARTNERS_AND_REVIEWERS,
        SalesOp.APPROVE: REVIEWERS,
        SalesOp.REJECT: REVIEWERS,
        SalesOp.REQUEST_PROOF: REVIEWERS,
        SalesOp.REVERSE: REVIEWERS,
        SalesOp.WATCH_CLAIMS: PARTNER_USERS,
        SalesOp.READ_SETTINGS: VENDOR_STAFF,
        SalesOp.UPDATE_SETTINGS: VENDOR_ADMIN,
        SalesOp.IMPORT_SERIALS: VENDOR_ADMIN,
        SalesOp.READ_SALE_EVENTS: FINANCE_OR_ADMIN,
    }
)
