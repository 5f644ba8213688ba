"""Who may do what with incentive rules. Rules are vendor-side: partner roles may do none
of it (they read only the explanations and recommendations addressed to them)."""

from __future__ import annotations

from enum import StrEnum

from partners.policy import VENDOR_ADMIN, VENDOR_STAFF, Policy


class RuleOp(StrEnum):
    READ = "incentiveRules"
    READ_ONE = "incentiveRule"
    READ_FIRINGS = "ruleFirings"
    READ_TEMPLATES = "ruleTemplates"
    CREATE = "incentiveRuleCreate"
    CREATE_FROM_TEMPLATE = "incentiveRuleCreateFromTemplate"
    DRAFT = "incentiveRuleDraft"
    DRY_RUN = "incentiveRuleDryRun"
    APPROVE = "incentiveRuleApprove"
    PAUSE = "incentiveRulePause"
    RESUME = "incentiveRuleResume"
    ROLL_BACK = "incentiveRuleRollBack"
    SET_BUDGET = "incentiveRuleBudgetSet"
    APPROVE_BUDGET_CHANGE = "incentiveRuleBudgetChangeApprove"
    CANCEL_BUDGET_CHANGE = "incentiveRuleBudgetChangeCancel"


RULES = Policy[RuleOp](
    {
        RuleOp.READ: VENDOR_STAFF,
        RuleOp.READ_ONE: VENDOR_STAFF,
        RuleOp.READ_FIRINGS: VENDOR_STAFF,
        RuleOp.READ_TEMPLATES: VENDOR_ADMIN,
        RuleOp.CREATE: VENDOR_ADMIN,
        RuleOp.CREATE_FROM_TEMPLATE: VENDOR_ADMIN,
        RuleOp.DRAFT: VENDOR_ADMIN,
        RuleOp.DRY_RUN: VENDOR_ADMIN,
        RuleOp.APPROVE: VENDOR_ADMIN,
        RuleOp.PAUSE: VENDOR_ADMIN,
        RuleOp.RESUME: VENDOR_ADMIN,
        RuleOp.ROLL_BACK: VENDOR_ADMIN,
        RuleOp.SET_BUDGET: VENDOR_ADMIN,
        RuleOp.APPROVE_BUDGET_CHANGE: VENDOR_ADMIN,
        RuleOp.CANCEL_BUDGET_CHANGE: VENDOR_ADMIN,
    }
)
