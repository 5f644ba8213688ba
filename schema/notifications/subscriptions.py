from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator

import strawberry
from strawberry import Info

from notifications import repository
from notifications.delivery import channel
from schema.context import Context
from schema.notifications.types import NotificationType
from schema.permissions import IsAuthenticated


@strawberry.type
class NotificationsSubscription:
    @strawberry.subscription(
        permission_classes=[IsAuthenticated],
        description="Your new notifications as they arrive (made by whichever process "
        "handled the event). After a lost connection to the notice bus, what arrived "
        "meanwhile is sent in order. An API key receives nothing.",
    )
    async def notification_received(
        self, info: Info[Context, None]
    ) -> AsyncGenerator[NotificationType, None]:
        ctx = info.context
        principal = ctx.caller
        services = ctx.services
        if principal.user_id is None:
            return
        async with services.hub.listen(channel(services.hub, principal.user_id)) as listener:
            # Start after the newest existing one: only what arrives from now on is sent.
            async with services.db.read_session() as session:
                last: uuid.UUID | None = await repository.latest_id(session, principal)
            while True:
                await listener.get()  # a notice (an id) or None (notices may be missing)
                # Either way re-read what is newer than the last one sent, through the
                # caller's own visibility: a notice names nothing the reader could not see.
                async with services.db.read_session() as session:
                    fresh = await repository.newer_than(session, principal, last)
                for row in fresh:
                    yield NotificationType.from_model(row)
                    last = row.id
