"""Rule governance mutations: create (from scratch or a template), draft a version,
approve (four eyes), pause, resume, roll back, set the budget (a loosening approved by a
second admin). Vendor admins only."""

from __future__ import annotations

from typing import ClassVar, Self

import strawberry
from strawberry import Info

from incentives import rules
from incentives.actions import Action
from incentives.errors import RuleErrorCode
from incentives.models import IncentiveRule, IncentiveRuleVersion
from incentives.policy import RULES, RuleOp
from schema.context import Context
from schema.errors import UserError
from schema.incentives.inputs import (
    IncentiveRuleApproveInput,
    IncentiveRuleBudgetChangeDecideInput,
    IncentiveRuleBudgetSetInput,
    IncentiveRuleCreateInput,
    IncentiveRuleDraftInput,
    IncentiveRuleFromTemplateInput,
    IncentiveRuleRollBackInput,
    IncentiveRuleStatusInput,
    RuleActionInput,
)
from schema.incentives.types import (
    IncentiveRuleBudgetChangeType,
    IncentiveRuleType,
    IncentiveRuleVersionType,
)
from schema.mutations import Payload, Write, run
from schema.permissions import allowed

RuleErrorCodeEnum = strawberry.enum(RuleErrorCode, name="RuleErrorCode")


@strawberry.type
class RuleError(UserError):
    code: RuleErrorCode
    amount_code: ClassVar = RuleErrorCode.INVALID_AMOUNT


@strawberry.type
class IncentiveRulePayload(Payload[IncentiveRule], errors=RuleError):
    rule: IncentiveRuleType | None = None
    user_errors: list[RuleError] = strawberry.field(default_factory=list)

    @classmethod
    def of(cls, result: IncentiveRule, write: Write) -> Self:
        return cls(rule=IncentiveRuleType.from_model(result))


@strawberry.type
class IncentiveRuleVersionPayload(Payload[IncentiveRuleVersion], errors=RuleError):
    version: IncentiveRuleVersionType | None = None
    user_errors: list[RuleError] = strawberry.field(default_factory=list)

    @classmethod
    def of(cls, result: IncentiveRuleVersion, write: Write) -> Self:
        return cls(version=IncentiveRuleVersionType.from_model(result))


@strawberry.type
class IncentiveRuleBudgetPayload(Payload[rules.BudgetOutcome], errors=RuleError):
    rule: IncentiveRuleType | None = None
    applied: bool | None = strawberry.field(
        default=None,
        description="Whether the rule's budget is now the one asked for; false: the change "
        "waits for a second vendor admin (or was cancelled).",
    )
    budget_change: IncentiveRuleBudgetChangeType | None = strawberry.field(
        default=None, description="The budget change concerned; null for a budget set at once."
    )
    user_errors: list[RuleError] = strawberry.field(default_factory=list)

    @classmethod
    def of(cls, result: rules.BudgetOutcome, write: Write) -> Self:
        change = result.change
        return cls(
            rule=IncentiveRuleType.from_model(result.rule), applied=result.applied,
            budget_change=IncentiveRuleBudgetChangeType.from_model(change) if change else None,
        )  # fmt: skip


def _actions(m: Write, actions: list[RuleActionInput]) -> list[Action]:
    return [
        Action(
            kind=a.kind,
            days=a.days,
            group_id=m.optional_id(a.group_id, "PartnerGroup"),
            program_id=m.optional_id(a.program_id, "EarningProgram"),
            delta_bp=a.delta_bp,
            partner_reason=a.partner_reason,
            title=a.title,
            text=a.text,
            link=a.link,
            code=a.code,
            message=a.message,
        )  # fmt: skip
        for a in actions
    ]


@strawberry.type
class IncentivesMutation:
    @strawberry.mutation(
        permission_classes=[allowed(RULES, RuleOp.CREATE)],
        description="Create a rule; its first version is a draft until another vendor admin "
        "approves it.",
    )
    async def incentive_rule_create(
        self, info: Info[Context, None], input: IncentiveRuleCreateInput
    ) -> IncentiveRulePayload:
        async def create(m: Write) -> IncentiveRule:
            cap = m.optional_money(input.budget_cap, "budget_cap")
            return await rules.create_rule(
                m.session, m.principal, m.clock, name=input.name, description=input.description,
                condition=input.condition, actions=_actions(m, input.actions),
                period=input.period,
                target_group_id=m.optional_id(input.target_group_id, "PartnerGroup"),
                budget_cap_minor=cap.minor if cap else None,
                currency=cap.currency if cap else None,
            )  # fmt: skip

        return await run(info, IncentiveRulePayload, create)

    @strawberry.mutation(
        permission_classes=[allowed(RULES, RuleOp.CREATE_FROM_TEMPLATE)],
        description="Create a rule (a draft) from a shipped template.",
    )
    async def incentive_rule_create_from_template(
        self, info: Info[Context, None], input: IncentiveRuleFromTemplateInput
    ) -> IncentiveRulePayload:
        async def create(m: Write) -> IncentiveRule:
            cap = m.optional_money(input.budget_cap, "budget_cap")
            return await rules.create_from_template(
                m.session, m.principal, m.clock, key=input.template, name=input.name,
                group_id=m.optional_id(input.group_id, "PartnerGroup"),
                program_id=m.optional_id(input.program_id, "EarningProgram"),
                target_group_id=m.optional_id(input.target_group_id, "PartnerGroup"),
                budget_cap_minor=cap.minor if cap else None,
                currency=cap.currency if cap else None,
            )  # fmt: skip

        return await run(info, IncentiveRulePayload, create)

    @strawberry.mutation(
        permission_classes=[allowed(RULES, RuleOp.DRAFT)],
        description="Draft a new version of a rule (an unapproved earlier draft is discarded).",
    )
    async def incentive_rule_draft(
        self, info: Info[Context, None], input: IncentiveRuleDraftInput
    ) -> IncentiveRuleVersionPayload:
        return await run(info, IncentiveRuleVersionPayload, lambda m: rules.draft_version(
            m.session, m.principal, m.clock, rule_id=m.id(input.rule_id, "IncentiveRule"),
            condition=input.condition, actions=_actions(m, input.actions), period=input.period,
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(RULES, RuleOp.APPROVE)],
        description="Approve a draft (four eyes: not its author) with a reason; it becomes "
        "the rule's active version.",
    )
    async def incentive_rule_approve(
        self, info: Info[Context, None], input: IncentiveRuleApproveInput
    ) -> IncentiveRulePayload:
        return await run(info, IncentiveRulePayload, lambda m: rules.approve(
            m.session, m.principal, m.clock,
            version_id=m.id(input.version_id, "IncentiveRuleVersion"), reason=input.reason,
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(RULES, RuleOp.PAUSE)],
        description="Pause a rule: it is not evaluated; what it placed runs on.",
    )
    async def incentive_rule_pause(
        self, info: Info[Context, None], input: IncentiveRuleStatusInput
    ) -> IncentiveRulePayload:
        return await run(info, IncentiveRulePayload, lambda m: rules.set_status(
            m.session, m.principal, m.clock, rule_id=m.id(input.id, "IncentiveRule"),
            pause=True, reason=input.reason,
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(RULES, RuleOp.RESUME)],
        description="Resume a paused rule.",
    )
    async def incentive_rule_resume(
        self, info: Info[Context, None], input: IncentiveRuleStatusInput
    ) -> IncentiveRulePayload:
        return await run(info, IncentiveRulePayload, lambda m: rules.set_status(
            m.session, m.principal, m.clock, rule_id=m.id(input.id, "IncentiveRule"),
            pause=False, reason=input.reason,
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(RULES, RuleOp.ROLL_BACK)],
        description="Make an earlier approved version active again; what the replaced "
        "version's firings placed and still runs ends now (with reverseEarnings, what its "
        "overlays paid is taken back too).",
    )
    async def incentive_rule_roll_back(
        self, info: Info[Context, None], input: IncentiveRuleRollBackInput
    ) -> IncentiveRulePayload:
        return await run(info, IncentiveRulePayload, lambda m: rules.roll_back(
            m.session, m.principal, m.clock, rule_id=m.id(input.id, "IncentiveRule"),
            to_version=input.to_version, reason=input.reason,
            reverse_earnings=input.reverse_earnings,
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(RULES, RuleOp.SET_BUDGET)],
        description="Set (or with null remove) the cap on what the rule's rate overlays pay; "
        "removing it keeps the rule's currency. A tighter budget applies at once; loosening "
        "a rule's budget (a higher cap, no cap, another currency), approved or not yet, needs "
        "a reason and waits for another vendor admin's approval (`applied: false`, the "
        "`budgetChange` pending), replacing a pending one.",
    )
    async def incentive_rule_budget_set(
        self, info: Info[Context, None], input: IncentiveRuleBudgetSetInput
    ) -> IncentiveRuleBudgetPayload:
        async def set_budget(m: Write) -> rules.BudgetOutcome:
            cap = m.optional_money(input.budget_cap, "budget_cap")
            return await rules.set_budget(
                m.session, m.principal, m.clock, rule_id=m.id(input.id, "IncentiveRule"),
                budget_cap_minor=cap.minor if cap else None,
                currency=cap.currency if cap else None, reason=input.reason,
            )  # fmt: skip

        return await run(info, IncentiveRuleBudgetPayload, set_budget)

    @strawberry.mutation(
        permission_classes=[allowed(RULES, RuleOp.APPROVE_BUDGET_CHANGE)],
        description="Approve a pending budget change (four eyes: not the one who asked) with "
        "a reason; the rule's budget becomes the change's. BUDGET_CHANGED when the rule's "
        "budget is no longer the one it was asked from.",
    )
    async def incentive_rule_budget_change_approve(
        self, info: Info[Context, None], input: IncentiveRuleBudgetChangeDecideInput
    ) -> IncentiveRuleBudgetPayload:
        return await run(info, IncentiveRuleBudgetPayload, lambda m: rules.approve_budget_change(
            m.session, m.principal, m.clock,
            change_id=m.id(input.id, "IncentiveRuleBudgetChange"), reason=input.reason,
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(RULES, RuleOp.CANCEL_BUDGET_CHANGE)],
        description="Withdraw or reject a pending budget change with a reason; the rule's "
        "budget stays as it is.",
    )
    async def incentive_rule_budget_change_cancel(
        self, info: Info[Context, None], input: IncentiveRuleBudgetChangeDecideInput
    ) -> IncentiveRuleBudgetPayload:
        return await run(info, IncentiveRuleBudgetPayload, lambda m: rules.cancel_budget_change(
            m.session, m.principal, m.clock,
            change_id=m.id(input.id, "IncentiveRuleBudgetChange"), reason=input.reason,
        ))  # fmt: skip
