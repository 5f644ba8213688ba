"""Notifications in GraphQL: the inbox entry, its category, and a user's preferences."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry import relay

from notifications import repository
from notifications.models import Category, Channel, Notification
from notifications.preferences import Preferences
from schema.relay import visible_nodes

NotificationCategoryEnum = strawberry.enum(
    Category, name="NotificationCategory", description="What a notification is about."
)
NotificationChannelEnum = strawberry.enum(
    Channel,
    name="NotificationChannel",
    description="Where a category's notifications go: EMAIL (the inbox and an e-mail, or "
    "the daily digest), IN_APP (the inbox only) or OFF.",
)


@strawberry.type(
    name="Notification",
    description="One entry of your inbox, written in your language when it was made.",
)
class NotificationType(relay.Node):
    id: relay.NodeID[str]
    category: NotificationCategoryEnum  # type: ignore[valid-type]
    kind: str = strawberry.field(
        description="What happened, e.g. claim_approved, payout_held, deal_expiring."
    )
    title: str
    body: str = strawberry.field(description="Plain text; paragraphs separated by a blank line.")
    subject_id: str | None = strawberry.field(
        description="The id (UUID) of the record it is about (claim, deal, statement...)."
    )
    created_at: datetime
    read_at: datetime | None

    @classmethod
    def from_model(cls, row: Notification) -> NotificationType:
        return cls(
            id=str(row.id), category=row.category, kind=row.kind, title=row.title,
            body=row.body, subject_id=str(row.subject_id) if row.subject_id else None,
            created_at=row.created_at, read_at=row.read_at,
        )  # fmt: skip

    resolve_nodes = visible_nodes(repository.notifications_by_ids)


@strawberry.type(name="NotificationCategoryChannel")
class CategoryChannelType:
    category: NotificationCategoryEnum  # type: ignore[valid-type]
    channel: NotificationChannelEnum  # type: ignore[valid-type]


@strawberry.type(name="NotificationPreferences")
class NotificationPreferencesType:
    locale: str = strawberry.field(description="The language notifications are written in.")
    time_zone: str = strawberry.field(description="For dates in messages and the digest hour.")
    digest: bool = strawberry.field(
        description="E-mails are collected into one daily digest instead of sent one by one."
    )
    digest_hour: int = strawberry.field(description="The local hour (0-23) the digest leaves.")
    channels: list[CategoryChannelType] = strawberry.field(
        description="Every category with its channel."
    )

    @classmethod
    def of(cls, prefs: Preferences) -> NotificationPreferencesType:
        return cls(
            locale=prefs.locale, time_zone=prefs.time_zone, digest=prefs.digest,
            digest_hour=prefs.digest_hour,
            channels=[CategoryChannelType(category=c, channel=prefs.channel(c)) for c in Category],
        )  # fmt: skip
