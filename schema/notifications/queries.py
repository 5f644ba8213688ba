from __future__ import annotations

import strawberry
from strawberry import Info

from notifications import preferences, repository
from schema.context import Context
from schema.notifications.types import NotificationPreferencesType, NotificationType
from schema.permissions import IsAuthenticated
from schema.relay import Connection, paginate


@strawberry.type
class NotificationsQuery:
    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="Your notifications, newest first (only your own: a partner user's are "
        "about its partner, vendor staff's about its vendor; an API key has none).",
    )
    async def notifications(
        self,
        info: Info[Context, None],
        first: int | None = None,
        after: str | None = None,
        unread_only: bool = False,
    ) -> Connection[NotificationType]:
        stmt = repository.readable_notifications(info.context.caller)
        if unread_only:
            stmt = repository.unread(stmt)
        return await paginate(
            info.context, stmt, first=first, after=after,
            to_node=NotificationType.from_model, descending=True,
        )  # fmt: skip

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="How many of your notifications are unread.",
    )
    async def unread_notification_count(self, info: Info[Context, None]) -> int:
        return await repository.unread_count(info.context.session, info.context.caller)

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="Your notification preferences (defaults until you change them).",
    )
    async def notification_preferences(
        self, info: Info[Context, None]
    ) -> NotificationPreferencesType:
        prefs = await preferences.read_preferences(info.context.session, info.context.caller)
        return NotificationPreferencesType.of(prefs)
