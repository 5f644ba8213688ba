from __future__ import annotations

import strawberry

from schema.notifications.types import NotificationCategoryEnum, NotificationChannelEnum


@strawberry.input
class NotificationMarkReadInput:
    id: strawberry.ID


@strawberry.input
class NotificationMarkAllReadInput:
    confirm: bool = strawberry.field(default=True, description="Unused; inputs need a field.")


@strawberry.input
class CategoryChannelInput:
    category: NotificationCategoryEnum  # type: ignore[valid-type]
    channel: NotificationChannelEnum  # type: ignore[valid-type]


@strawberry.input(description="Fields left out (null) stay as they are.")
class NotificationPreferencesUpdateInput:
    locale: str | None = strawberry.field(default=None, description="en or de.")
    time_zone: str | None = strawberry.field(default=None, description="An IANA time zone.")
    digest: bool | None = None
    digest_hour: int | None = strawberry.field(default=None, description="0 to 23, local time.")
    channels: list[CategoryChannelInput] | None = strawberry.field(
        default=None, description="Channels for these categories; others keep theirs."
    )
