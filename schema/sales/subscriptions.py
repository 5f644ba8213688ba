from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator

import strawberry
from strawberry import Info

from deal_registration.sales import fanout, repository
from schema.context import Context
from schema.permissions import PartnerUsers
from schema.sales.types import SaleClaimType


@strawberry.type
class SalesSubscription:
    @strawberry.subscription(
        permission_classes=[PartnerUsers],
        description="Your claims as their state changes (partner users: a partner admin "
        "hears about the organisation's claims, a rep about its own).",
    )
    async def sale_claim_state_changed(
        self, info: Info[Context, None]
    ) -> AsyncGenerator[SaleClaimType, None]:
        ctx = info.context
        principal = ctx.principal
        assert principal is not None
        assert principal.partner_id is not None
        hub = ctx.services.hub
        async with hub.listen(fanout.claim_channel(hub, principal.partner_id)) as listener:
            async for message in listener:
                try:
                    claim_id = uuid.UUID(message.decode())
                except ValueError:
                    continue
                # A short session per notice; the claim is re-read through the caller's
                # visibility, so a rep never hears of a colleague's claim.
                async with ctx.services.db.session() as session:
                    claim = await repository.get_readable_claim(session, principal, claim_id)
                    if claim is None:
                        continue
                    item = await SaleClaimType.loaded(session, claim)
                yield item
