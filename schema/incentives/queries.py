"""Rule queries: vendor staff read rules and firings, vendor admins templates and dry runs;
a partner user reads the explanations and recommendations addressed to its partner."""

from __future__ import annotations

from datetime import date

import strawberry
from graphql import GraphQLError
from strawberry import Info

from incentives import repository
from incentives.dry_run import dry_run
from incentives.errors import RuleErrorCode
from incentives.explanations import explain
from incentives.models import RuleFiring
from incentives.policy import RULES, RuleOp
from incentives.recommendations import active_recommendations
from incentives.templates import TEMPLATES
from infra.errors import DomainError
from schema.context import Context
from schema.incentives.types import (
    IncentiveExplanation,
    IncentiveRuleType,
    RuleDryRun,
    RuleFiringType,
    RuleRecommendationType,
    RuleTemplate,
)
from schema.permissions import IsAuthenticated, allowed
from schema.relay import Connection, paginate, parse_global_id

MAX_EXPLANATIONS = 100


@strawberry.type
class IncentivesQuery:
    @strawberry.field(
        permission_classes=[allowed(RULES, RuleOp.READ)],
        description="The vendor's incentive rules.",
    )
    async def incentive_rules(
        self, info: Info[Context, None], first: int | None = None, after: str | None = None
    ) -> Connection[IncentiveRuleType] | None:
        return await paginate(
            info.context, repository.readable_rules(info.context.caller),
            first=first, after=after, to_node=IncentiveRuleType.from_model,
        )  # fmt: skip

    @strawberry.field(
        permission_classes=[allowed(RULES, RuleOp.READ_ONE)],
        description="A rule by id; null when it does not exist or is another vendor's.",
    )
    async def incentive_rule(
        self, info: Info[Context, None], id: strawberry.ID
    ) -> IncentiveRuleType | None:
        rule_id = parse_global_id(id, "IncentiveRule")
        if rule_id is None:
            return None
        found = await repository.rules_by_ids(info.context.session, info.context.caller, [rule_id])
        return IncentiveRuleType.from_model(found[rule_id]) if rule_id in found else None

    @strawberry.field(
        permission_classes=[allowed(RULES, RuleOp.READ_FIRINGS)],
        description="Rule firings, newest first, of one rule and/or one partner.",
    )
    async def rule_firings(
        self,
        info: Info[Context, None],
        rule_id: strawberry.ID | None = None,
        partner_id: strawberry.ID | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[RuleFiringType] | None:
        ctx = info.context
        stmt = repository.readable_firings(ctx.caller)
        if rule_id is not None:
            stmt = stmt.where(RuleFiring.rule_id == parse_global_id(rule_id, "IncentiveRule"))
        if partner_id is not None:
            stmt = stmt.where(RuleFiring.partner_id == parse_global_id(partner_id, "Partner"))
        currencies = await repository.vendor_rule_currencies(ctx.session, ctx.caller)
        return await paginate(
            ctx, stmt, first=first, after=after, descending=True,
            to_node=lambda f: RuleFiringType.from_model(f, currencies.get(f.rule_id, "USD")),
        )  # fmt: skip

    @strawberry.field(
        permission_classes=[allowed(RULES, RuleOp.READ_TEMPLATES)],
        description="The rule templates shipped with the product.",
    )
    def rule_templates(self) -> list[RuleTemplate] | None:
        return [RuleTemplate.of(t) for t in TEMPLATES]

    @strawberry.field(
        permission_classes=[allowed(RULES, RuleOp.DRY_RUN)],
        description="What a version (a draft, typically) would do on today's signals or a "
        "past day's: which partners would fire, with which actions, at what estimated cost. "
        "Nothing is written.",
    )
    async def incentive_rule_dry_run(
        self, info: Info[Context, None], version_id: strawberry.ID, day: date | None = None
    ) -> RuleDryRun | None:
        ctx = info.context
        version = parse_global_id(version_id, "IncentiveRuleVersion")
        if version is None:
            return None
        today = ctx.services.clock.now().date()
        if day is not None and day > today:
            raise GraphQLError("Today or a past day.", extensions={"code": "INVALID_DATE"})
        try:
            run = await dry_run(
                ctx.session, ctx.caller, ctx.services.clock, version_id=version, day=day or today
            )
        except DomainError as error:
            if error.code == RuleErrorCode.NOT_FOUND:
                return None
            raise GraphQLError(error.message, extensions={"code": str(error.code)}) from None
        return RuleDryRun.of(run)

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="For partner admins: what incentive rules did that affects your "
        "organisation, newest first, in plain language (empty for vendor staff, and for "
        "partner reps: a firing reads and changes the organisation's figures and payouts).",
    )
    async def incentive_explanations(self, info: Info[Context, None]) -> list[IncentiveExplanation]:
        ctx = info.context
        # Those the partner may not see are dropped before the limit, not after it.
        out: list[IncentiveExplanation] = []
        async for firings in repository.partner_firings_newest_first(
            ctx.session, ctx.caller, MAX_EXPLANATIONS
        ):
            readings = await repository.readings(ctx.session, firings)
            ends = await repository.ends_of(ctx.session, [f.id for f in firings])
            now = ctx.services.clock.now()
            for firing in firings:
                reading = readings[firing.id]
                text = explain(
                    firing.values, firing.outcomes, reading.signal_currency,
                    ends.get(firing.id, []), now=now, window_ends=reading.window_ends,
                )  # fmt: skip
                if text is not None:
                    out.append(IncentiveExplanation(fired_at=firing.fired_at, text=text))
                    if len(out) == MAX_EXPLANATIONS:
                        return out
        return out

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="For partner users: the actions recommended to your organisation that "
        "have not expired (empty for vendor staff).",
    )
    async def rule_recommendations(self, info: Info[Context, None]) -> list[RuleRecommendationType]:
        ctx = info.context
        principal = ctx.caller
        if not principal.is_partner or principal.partner_id is None:
            return []
        rows = await active_recommendations(
            ctx.session, principal.partner_id, ctx.services.clock.now()
        )
        return [RuleRecommendationType.from_model(r) for r in rows]
