from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import timedelta

import strawberry
from strawberry import Info

from deal_registration.sales import fanout, repository
from deal_registration.sales.policy import SALES, SalesOp
from schema.context import Context
from schema.deal_registration.sales.types import SaleClaimType
from schema.notices import NOTICE_QUEUE, RecentEvents
from schema.permissions import allowed

# Changes committed just before a loss was noticed may not have been published yet.
MISSED_MARGIN = timedelta(seconds=5)


@strawberry.type
class SalesSubscription:
    @strawberry.subscription(
        permission_classes=[allowed(SALES, SalesOp.WATCH_CLAIMS)],
        description="Your claims as their state changes (partner users: a partner admin "
        "hears about the organisation's claims, a rep about its own). Each change is sent "
        "once, in order, with the state it moved to (`state`, `updatedAt`); the other "
        "fields are the claim as it is when the message is sent.",
    )
    async def sale_claim_state_changed(
        self, info: Info[Context, None]
    ) -> AsyncGenerator[SaleClaimType, None]:
        ctx = info.context
        principal = ctx.caller
        assert principal.partner_id is not None
        hub = ctx.services.hub
        clock = ctx.services.clock
        recent = RecentEvents()
        channel = fanout.claim_channel(hub, principal.partner_id)
        async with hub.listen(channel, maxsize=NOTICE_QUEUE) as listener:
            # Since when this subscriber may have missed changes, should Redis drop out.
            since = clock.now()
            async for message in listener:
                if message is None:
                    # The pub/sub connection was lost (and is back, or being made again):
                    # notices may be missing, so send every claim that changed meanwhile.
                    now = clock.now()
                    async with ctx.services.db.read_session() as session:
                        changed = await repository.claims_changed_since(
                            session, principal, since - MISSED_MARGIN
                        )
                        items = [await SaleClaimType.loaded(session, c) for c in changed]
                    since = now
                    for item in items:
                        yield item
                    continue
                notice = fanout.ClaimNotice.decode(message)
                if notice is None or not recent.first_time(notice.event_id):
                    continue
                # A short session per notice; the claim is re-read through the caller's
                # visibility, so a rep never hears of a colleague's claim.
                async with ctx.services.db.read_session() as session:
                    claim = await repository.get_readable_claim(session, principal, notice.claim_id)
                    if claim is None:
                        continue
                    item = await SaleClaimType.loaded(session, claim)
                yield item.as_of(notice.state, notice.at)
