from __future__ import annotations

from typing import Self

import strawberry
from strawberry import Info

from notifications import inbox, preferences
from notifications.errors import NotificationErrorCode
from notifications.models import Notification
from notifications.policy import NOTIFICATIONS, NotificationOp
from notifications.preferences import Preferences
from schema.context import Context
from schema.errors import UserError
from schema.mutations import Payload, Write, run
from schema.notifications.inputs import (
    NotificationMarkAllReadInput,
    NotificationMarkReadInput,
    NotificationPreferencesUpdateInput,
)
from schema.notifications.types import NotificationPreferencesType, NotificationType
from schema.permissions import allowed

NotificationErrorCodeEnum = strawberry.enum(NotificationErrorCode)


@strawberry.type
class NotificationError(UserError):
    code: NotificationErrorCodeEnum  # type: ignore[valid-type]


@strawberry.type
class NotificationMarkReadPayload(Payload[Notification], errors=NotificationError):
    notification: NotificationType | None = None
    user_errors: list[NotificationError] = strawberry.field(default_factory=list)

    @classmethod
    def of(cls, result: Notification, write: Write) -> Self:
        return cls(notification=NotificationType.from_model(result))


@strawberry.type
class NotificationMarkAllReadPayload(Payload[int], errors=NotificationError):
    marked: int | None = strawberry.field(default=None, description="How many were unread.")
    user_errors: list[NotificationError] = strawberry.field(default_factory=list)

    @classmethod
    def of(cls, result: int, write: Write) -> Self:
        return cls(marked=result)


@strawberry.type
class NotificationPreferencesUpdatePayload(Payload[Preferences], errors=NotificationError):
    preferences: NotificationPreferencesType | None = None
    user_errors: list[NotificationError] = strawberry.field(default_factory=list)

    @classmethod
    def of(cls, result: Preferences, write: Write) -> Self:
        return cls(preferences=NotificationPreferencesType.of(result))


@strawberry.type
class NotificationsMutation:
    @strawberry.mutation(
        permission_classes=[allowed(NOTIFICATIONS, NotificationOp.MARK_READ)],
        description="Mark one of your notifications read.",
    )
    async def notification_mark_read(
        self, info: Info[Context, None], input: NotificationMarkReadInput
    ) -> NotificationMarkReadPayload:
        return await run(info, NotificationMarkReadPayload, lambda m: inbox.mark_read(
            m.session, m.principal, m.clock, notification_id=m.id(input.id, "Notification"),
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(NOTIFICATIONS, NotificationOp.MARK_ALL_READ)],
        description="Mark all your notifications read (or those created before `before`).",
    )
    async def notification_mark_all_read(
        self, info: Info[Context, None], input: NotificationMarkAllReadInput | None = None
    ) -> NotificationMarkAllReadPayload:
        before = input.before if input is not None else None
        return await run(info, NotificationMarkAllReadPayload, lambda m: inbox.mark_all_read(
            m.session, m.principal, m.clock, before=before,
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(NOTIFICATIONS, NotificationOp.PREFERENCES_UPDATE)],
        description="Change your notification preferences: language, time zone, daily digest "
        "and a channel per category. Malformed preferences are userErrors and change nothing.",
    )
    async def notification_preferences_update(
        self, info: Info[Context, None], input: NotificationPreferencesUpdateInput
    ) -> NotificationPreferencesUpdatePayload:
        channels = (
            [(c.category, c.channel) for c in input.channels] if input.channels is not None
            else None
        )  # fmt: skip
        return await run(
            info, NotificationPreferencesUpdatePayload,
            lambda m: preferences.update_preferences(
                m.session, m.principal, m.clock, locale=input.locale, time_zone=input.time_zone,
                digest=input.digest, digest_hour=input.digest_hour, channels=channels,
            ),
        )  # fmt: skip
