from __future__ import annotations

import json
import uuid
from collections.abc import AsyncGenerator
from datetime import datetime

import strawberry
from strawberry import Info

from deal_registration.registrations import notices, repository
from deal_registration.registrations.models import DealStatus
from schema.context import Context
from schema.deal_registration.types import DealStatusChange
from schema.permissions import IsAuthenticated
from schema.relay import parse_global_id, to_global_id


@strawberry.type
class DealRegistrationSubscription:
    @strawberry.subscription(
        permission_classes=[IsAuthenticated],
        description="Status changes of the deal registrations you may see (all of them, or "
        "the one with `id`), as they happen, from any API process.",
    )
    async def deal_registration_status_changed(
        self, info: Info[Context, None], id: strawberry.ID | None = None
    ) -> AsyncGenerator[DealStatusChange, None]:
        principal = info.context.principal
        services = info.context.services
        assert principal is not None
        only = parse_global_id(id, "DealRegistration") if id is not None else None
        if id is not None and only is None:
            return  # a malformed id matches nothing, like an id you may not see
        if principal.is_partner:
            assert principal.partner_id is not None
            channel = notices.partner_channel(
                services.hub, principal.vendor_id, principal.partner_id
            )
        else:
            channel = notices.vendor_channel(services.hub, principal.vendor_id)
        async with services.hub.listen(channel) as listener:
            async for raw in listener:
                if raw is None:
                    continue  # a reconnection: status changes are events, not re-readable
                notice = json.loads(raw)
                registration_id = uuid.UUID(notice["registration_id"])
                if only is not None and registration_id != only:
                    continue
                # A short session per notice, and the caller's own visibility rules.
                async with services.db.session() as session:
                    found = await repository.get_readable(session, principal, registration_id)
                if found is None:
                    continue
                yield DealStatusChange(
                    registration_id=to_global_id("DealRegistration", found.id),
                    customer_name=found.customer_name,
                    from_status=DealStatus(notice["from_status"])
                    if notice.get("from_status")
                    else None,
                    to_status=DealStatus(notice["to_status"]),
                    status=repository.effective_status(found, services.clock.now()),
                    changed_at=datetime.fromisoformat(notice["at"]),
                )
