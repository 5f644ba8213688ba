from __future__ import annotations

import strawberry
from strawberry import Info

from infra.errors import DomainError
from schema.context import Context
from schema.errors import query_error
from schema.permissions import allowed
from schema.relay import Connection, paginate, row_id
from schema.subscriptions.types import (
    NetRevenueRetentionType,
    RenewalDueType,
    SubscriptionType,
)
from subscriptions import renewals, repository, retention
from subscriptions.policy import SUBSCRIPTIONS, SubscriptionOp


@strawberry.type
class SubscriptionsQuery:
    @strawberry.field(
        permission_classes=[allowed(SUBSCRIPTIONS, SubscriptionOp.READ)],
        description="Subscriptions you may see (partners: their own), soonest end first.",
    )
    async def subscriptions(
        self,
        info: Info[Context, None],
        first: int | None = None,
        after: str | None = None,
        partner_id: strawberry.ID | None = None,
        active_only: bool = False,
    ) -> Connection[SubscriptionType] | None:
        principal = info.context.caller
        partner = row_id(partner_id, "Partner") if partner_id is not None else None
        statement = repository.subscriptions_matching(
            principal, partner_id=partner, active_only=active_only
        )
        return await paginate(
            info.context, statement, first=first, after=after, to_node=SubscriptionType.from_model
        )

    @strawberry.field(
        permission_classes=[allowed(SUBSCRIPTIONS, SubscriptionOp.RENEWALS_READ)],
        description="Live subscriptions whose term ends within 30, 60 or 90 days, each with "
        "its renewal probability and the inputs that made it (docs/recurring.md).",
    )
    async def renewals_due(
        self,
        info: Info[Context, None],
        within_days: int = 90,
        partner_id: strawberry.ID | None = None,
    ) -> list[RenewalDueType] | None:
        ctx = info.context
        partner = row_id(partner_id, "Partner") if partner_id is not None else None
        try:
            due = await renewals.visible_renewals_due(
                ctx.session, ctx.caller, ctx.services.clock, within_days=within_days,
                partner_id=partner,
            )  # fmt: skip
        except DomainError as error:
            raise query_error(error) from error
        return [RenewalDueType.of(d) for d in due]

    @strawberry.field(
        permission_classes=[allowed(SUBSCRIPTIONS, SubscriptionOp.RETENTION_READ)],
        description="Net revenue retention of the accounts you may see (partners: their "
        "own), per currency, over the last 12 months.",
    )
    async def net_revenue_retention(
        self, info: Info[Context, None], partner_id: strawberry.ID | None = None
    ) -> list[NetRevenueRetentionType] | None:
        ctx = info.context
        partner = row_id(partner_id, "Partner") if partner_id is not None else None
        found = await retention.net_revenue_retention(
            ctx.session, ctx.caller, ctx.services.clock, partner_id=partner
        )
        return [NetRevenueRetentionType.of(r) for r in found]
