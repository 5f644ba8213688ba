from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry
from strawberry import Info

from deal_registration.sales import fanout, repository
from schema.context import Context
from schema.notices import NOTICE_QUEUE, RecentEvents
from schema.permissions import PartnerUsers
from schema.sales.types import SaleClaimType


@strawberry.type
class SalesSubscription:
    @strawberry.subscription(
        permission_classes=[PartnerUsers],
        description="Your claims as their state changes (partner users: a partner admin "
        "hears about the organisation's claims, a rep about its own). Each change is sent "
        "once, in order, with the state it moved to (`state`, `updatedAt`); the other "
        "fields are the claim as it is when the message is sent.",
    )
    async def sale_claim_state_changed(
        self, info: Info[Context, None]
    ) -> AsyncGenerator[SaleClaimType, None]:
        ctx = info.context
        principal = ctx.principal
        assert principal is not None
        assert principal.partner_id is not None
        hub = ctx.services.hub
        recent = RecentEvents()
        channel = fanout.claim_channel(hub, principal.partner_id)
        async with hub.listen(channel, maxsize=NOTICE_QUEUE) as listener:
            async for message in listener:
                notice = fanout.ClaimNotice.decode(message)
                if notice is None or not recent.first_time(notice.event_id):
                    continue
                # A short session per notice; the claim is re-read through the caller's
                # visibility, so a rep never hears of a colleague's claim.
                async with ctx.services.db.session() as session:
                    claim = await repository.get_readable_claim(session, principal, notice.claim_id)
                    if claim is None:
                        continue
                    item = await SaleClaimType.loaded(session, claim)
                yield item.as_of(notice.state, notice.at)
