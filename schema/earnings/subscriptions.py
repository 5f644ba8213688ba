from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry
from graphql import GraphQLError
from strawberry import Info

from earnings import handlers, service
from schema.context import Context
from schema.earnings.queries import scope_for
from schema.earnings.types import EarningsSummaryType
from schema.permissions import IsAuthenticated


def not_found() -> GraphQLError:
    return GraphQLError("No such partner.", extensions={"code": "NOT_FOUND"})


@strawberry.type
class EarningsSubscription:
    @strawberry.subscription(
        permission_classes=[IsAuthenticated],
        description="This month's earnings summary, first now and again whenever a ledger "
        "entry or payout decision touches the partner (from any API process). Partner users "
        "get their own (a rep: what is attributed to it). A partner or rep you may not read "
        "(or no longer may: a channel manager unassigned) errors NOT_FOUND.",
    )
    async def earnings_changed(
        self,
        info: Info[Context, None],
        partner_id: strawberry.ID | None = None,
        rep_id: strawberry.ID | None = None,
    ) -> AsyncGenerator[EarningsSummaryType, None]:
        ctx = info.context
        principal = ctx.caller
        services = ctx.services
        async with services.db.read_session() as session:
            scope = await scope_for(session, principal, partner_id, rep_id)
        if scope is None:
            raise not_found()
        channel = handlers.channel(services.hub, scope.partner_id)
        async with services.hub.listen(channel) as listener:
            last: EarningsSummaryType | None = None
            while True:
                # A short session per notice; a change that left this scope's summary as it
                # was (another rep's sale) sends nothing.
                start, end = service.current_month(services.clock)
                async with services.db.read_session() as session:
                    # Whether the caller may still read it is decided at every push, as a
                    # read decides it (a channel manager unassigned meanwhile: NOT_FOUND).
                    if await scope_for(session, principal, partner_id, rep_id) != scope:
                        raise not_found()
                    summary = await service.summary(
                        session, principal, services.clock, scope=scope, start=start, end=end,
                        signals=services.claim_signals,
                    )  # fmt: skip
                current = EarningsSummaryType.of(summary, principal)
                if current != last:
                    yield current
                    last = current
                await listener.get()
