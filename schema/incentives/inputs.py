from __future__ import annotations

import strawberry

from incentives.actions import ActionKind
from incentives.models import Period
from schema.money import MoneyInput


@strawberry.input(description="One action; give the fields its kind uses.")
class RuleActionInput:
    kind: ActionKind
    days: int = strawberry.field(
        default=30, description="The window (GROUP_WINDOW, RATE_OVERLAY, PAYOUT_HOLD) or the "
        "recommendation's life (RECOMMEND), in days."
    )  # fmt: skip
    group_id: strawberry.ID | None = strawberry.field(default=None, description="GROUP_WINDOW.")
    program_id: strawberry.ID | None = strawberry.field(default=None, description="RATE_OVERLAY.")
    delta_bp: int = strawberry.field(
        default=0, description="RATE_OVERLAY: basis points added (negative: taken) on each sale."
    )
    partner_reason: str = strawberry.field(
        default="", description="PAYOUT_HOLD: why, in the words the partner reads."
    )
    title: str = strawberry.field(default="", description="RECOMMEND.")
    text: str = strawberry.field(default="", description="RECOMMEND.")
    link: str | None = strawberry.field(default=None, description="RECOMMEND, optional.")
    code: str | None = strawberry.field(default=None, description="RECOMMEND, optional.")
    message: str = strawberry.field(default="", description="NOTIFY_STAFF, optional.")


@strawberry.input
class IncentiveRuleCreateInput:
    name: str
    description: str = ""
    condition: str = strawberry.field(description="A CEL expression over signal names.")
    actions: list[RuleActionInput]
    period: Period = Period.WEEK
    target_group_id: strawberry.ID | None = None
    budget_cap: MoneyInput | None = strawberry.field(
        default=None, description="What its rate overlays and paid group windows may cost in total."
    )


@strawberry.input
class IncentiveRuleFromTemplateInput:
    template: str = strawberry.field(description="A `ruleTemplates` key.")
    name: str | None = None
    group_id: strawberry.ID | None = strawberry.field(
        default=None, description="The promotion group (templates that need one)."
    )
    program_id: strawberry.ID | None = strawberry.field(
        default=None, description="The program to adjust (templates that need one)."
    )
    target_group_id: strawberry.ID | None = None
    budget_cap: MoneyInput | None = None


@strawberry.input
class IncentiveRuleDraftInput:
    rule_id: strawberry.ID
    condition: str
    actions: list[RuleActionInput]
    period: Period = Period.WEEK


@strawberry.input
class IncentiveRuleApproveInput:
    version_id: strawberry.ID
    reason: str


@strawberry.input
class IncentiveRuleStatusInput:
    id: strawberry.ID
    reason: str


@strawberry.input
class IncentiveRuleRollBackInput:
    id: strawberry.ID
    to_version: int
    reason: str
    reverse_earnings: bool = strawberry.field(
        default=False,
        description="Also take back what the replaced version's rate overlays paid: entries "
        "booked this month are reversed before any statement pays them; earlier months' "
        "entries, which their month's statement pays, are clawed back in this month's "
        "statement (a negative overlay's are paid back), each with a plain-language "
        "explanation. "
        "Default false: what was earned stays, only what still runs ends.",
    )


@strawberry.input
class IncentiveRuleBudgetSetInput:
    id: strawberry.ID
    budget_cap: MoneyInput | None = strawberry.field(description="null removes the cap.")
    reason: str = strawberry.field(
        default="",
        description="Why. Required to loosen a rule's budget (a higher cap, no cap, "
        "another currency), which waits for a second vendor admin; optional otherwise.",
    )


@strawberry.input
class IncentiveRuleBudgetChangeDecideInput:
    id: strawberry.ID = strawberry.field(description="The pending budget change.")
    reason: str
