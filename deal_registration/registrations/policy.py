"""Who may do what with deal registrations (row-level visibility: ``repository``)."""

from __future__ import annotations

from enum import StrEnum

from partners.policy import (
    PARTNER_USERS,
    PARTNERS_AND_REVIEWERS,
    REVIEWERS,
    VENDOR_ADMIN,
    VENDOR_STAFF,
    Policy,
)


class DealOp(StrEnum):
    SUBMIT = "dealRegistrationSubmit"  # reviewers register on a partner's behalf
    SUBMIT_DRAFT = "dealRegistrationSubmitDraft"
    ATTACH_PROOF = "dealRegistrationAttachProof"
    START_REVIEW = "dealRegistrationStartReview"
    APPROVE = "dealRegistrationApprove"
    REJECT = "dealRegistrationReject"
    WITHDRAW = "dealRegistrationWithdraw"
    MARK_WON = "dealRegistrationMarkWon"
    MARK_LOST = "dealRegistrationMarkLost"
    REQUEST_EXTENSION = "dealRegistrationExtensionRequest"
    DECIDE_EXTENSION = "dealRegistrationExtensionDecide"
    READ_SETTINGS = "dealProgramSettings"
    UPDATE_SETTINGS = "dealProgramSettingsUpdate"


DEALS = Policy[DealOp](
    {
        DealOp.SUBMIT: PARTNERS_AND_REVIEWERS,
        DealOp.SUBMIT_DRAFT: PARTNER_USERS,
        DealOp.ATTACH_PROOF: PARTNERS_AND_REVIEWERS,
        DealOp.START_REVIEW: REVIEWERS,
        DealOp.APPROVE: REVIEWERS,
        DealOp.REJECT: REVIEWERS,
        DealOp.WITHDRAW: PARTNER_USERS,
        DealOp.MARK_WON: PARTNERS_AND_REVIEWERS,
        DealOp.MARK_LOST: PARTNERS_AND_REVIEWERS,
        DealOp.REQUEST_EXTENSION: PARTNER_USERS,
        DealOp.DECIDE_EXTENSION: REVIEWERS,
        DealOp.READ_SETTINGS: VENDOR_STAFF,
        DealOp.UPDATE_SETTINGS: VENDOR_ADMIN,
    }
)
