from __future__ import annotations

from datetime import datetime

import strawberry

from schema.notifications.types import NotificationCategoryEnum, NotificationChannelEnum


@strawberry.input
class NotificationMarkReadInput:
    id: strawberry.ID


@strawberry.input
class NotificationMarkAllReadInput:
    before: datetime | None = strawberry.field(
        default=None,
        description="Only those created before this instant (e.g. when the list was shown), "
        "so that one arriving meanwhile stays unread; default: all.",
    )


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
