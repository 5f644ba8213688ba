"""Rule governance mutations: create (from scratch or a template), draft a version,
approve (four eyes), pause, resume, roll back, set the budget. Vendor admins only."""

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
    IncentiveRuleBudgetSetInput,
    IncentiveRuleCreateInput,
    IncentiveRuleDraftInput,
    IncentiveRuleFromTemplateInput,
    IncentiveRuleRollBackInput,
    IncentiveRuleStatusInput,
    RuleActionInput,
)
from schema.incentives.types import IncentiveRuleType, IncentiveRuleVersionType
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
        "removing it keeps the rule's currency.",
    )
    async def incentive_rule_budget_set(
        self, info: Info[Context, None], input: IncentiveRuleBudgetSetInput
    ) -> IncentiveRulePayload:
        async def set_budget(m: Write) -> IncentiveRule:
            cap = m.optional_money(input.budget_cap, "budget_cap")
            return await rules.set_budget(
                m.session, m.principal, m.clock, rule_id=m.id(input.id, "IncentiveRule"),
                budget_cap_minor=cap.minor if cap else None,
                currency=cap.currency if cap else None,
            )  # fmt: skip

        return await run(info, IncentiveRulePayload, set_budget)
