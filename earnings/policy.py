"""Who may do what with earnings, programs and payouts (row-level visibility:
``repository``)."""

from __future__ import annotations

from enum import StrEnum

from partners.policy import FINANCE, FINANCE_OR_ADMIN, VENDOR_ADMIN, VENDOR_STAFF, Policy


class EarningsOp(StrEnum):
    ADJUST = "earningAdjustmentCreate"
    CREATE_PROGRAM = "earningProgramCreate"
    CREATE_PROGRAM_VERSION = "earningProgramVersionCreate"
    GENERATE_STATEMENTS = "payoutStatementsGenerate"
    APPROVE_PAYOUT = "payoutApprove"
    MARK_PAID = "payoutMarkPaid"
    HOLD = "payoutHold"
    RELEASE_HOLD = "payoutHoldRelease"
    SET_PROFILE = "payoutProfileSet"
    SET_POLICY = "payoutPolicySet"
    READ_METRICS = "earningsMetrics"


EARNINGS = Policy[EarningsOp](
    {
        EarningsOp.ADJUST: FINANCE_OR_ADMIN,
        EarningsOp.CREATE_PROGRAM: VENDOR_ADMIN,
        EarningsOp.CREATE_PROGRAM_VERSION: VENDOR_ADMIN,
        EarningsOp.GENERATE_STATEMENTS: FINANCE,
        EarningsOp.APPROVE_PAYOUT: FINANCE,
        EarningsOp.MARK_PAID: FINANCE,
        EarningsOp.HOLD: FINANCE,
        EarningsOp.RELEASE_HOLD: FINANCE,
        EarningsOp.SET_PROFILE: FINANCE_OR_ADMIN,
        EarningsOp.SET_POLICY: FINANCE_OR_ADMIN,
        EarningsOp.READ_METRICS: VENDOR_STAFF,
    }
)
