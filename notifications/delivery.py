"""Turning notices into inbox entries and queued e-mails, in the caller's transaction.

A ``Notice`` names one recipient, what happened (category, kind, parameters) and what
caused it (``dedupe_key``: an outbox event id, or a clock trigger's key). ``deliver`` skips
notices already delivered (unique per user and key), so an event handled twice notifies
once; it renders each in the recipient's language, stores it, and queues an e-mail when the
recipient's channel for the category is EMAIL and e-mail is configured: at once, or into
the recipient's next daily digest."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from infra.clock import Clock
from infra.outbox import OutboxEvent
from infra.pubsub import Hub
from notifications import rendering
from notifications.models import Category, Channel, Mail, MailKind, Notification
from notifications.preferences import Preferences, preferences_of
from partners.models import User
from partners.roles import Role


@dataclass(frozen=True)
class Notice:
    user_id: uuid.UUID
    category: Category
    kind: str  # the template's name (notifications/templates/messages.*.txt)
    dedupe_key: str
    params: dict[str, Any] = field(default_factory=dict)
    subject_id: uuid.UUID | None = None


def channel(hub: Hub, user_id: uuid.UUID) -> str:
    """Where a user's new notifications are announced (every process's subscribers)."""
    return hub.channel("notification", user_id)


async def publish(hub: Hub, notifications: Sequence[Notification]) -> None:
    """After commit: tell the recipients' subscribers (a notice carries the id only)."""
    for notification in notifications:
        await hub.publish(channel(hub, notification.user_id), str(notification.id))


def next_digest(prefs: Preferences, now: datetime) -> datetime:
    """The next instant at the user's digest hour in the user's time zone (after ``now``)."""
    tz = ZoneInfo(prefs.time_zone)
    local = now.astimezone(tz)
    at = datetime.combine(local.date(), time(prefs.digest_hour), tz)
    if at <= local:
        at = datetime.combine(local.date() + timedelta(days=1), time(prefs.digest_hour), tz)
    return at.astimezone(now.tzinfo)


async def deliver(
    session: AsyncSession, clock: Clock, notices: Sequence[Notice], *, email: bool
) -> list[Notification]:
    """Store the notices not delivered before; returns the new notifications (publish them
    after commit). Notices to inactive or unknown users are dropped."""
    if not notices:
        return []
    user_ids = list({n.user_id for n in notices})
    users = {
        u.id: u
        for u in await session.exec(
            select(User).where(col(User.id).in_(user_ids), col(User.active).is_(True))
        )
    }
    keys = list({n.dedupe_key for n in notices})
    done = {
        (row[0], row[1])
        for row in await session.exec(
            select(Notification.user_id, Notification.dedupe_key).where(
                col(Notification.user_id).in_(user_ids), col(Notification.dedupe_key).in_(keys)
            )
        )
    }
    prefs: dict[uuid.UUID, Preferences] = {}
    made: list[Notification] = []
    now = clock.now()
    for notice in notices:
        user = users.get(notice.user_id)
        if user is None or (notice.user_id, notice.dedupe_key) in done:
            continue
        done.add((notice.user_id, notice.dedupe_key))
        if user.id not in prefs:
            prefs[user.id] = await preferences_of(session, user.id)
        pref = prefs[user.id]
        chosen = pref.channel(notice.category)
        if chosen is Channel.OFF:
            continue
        message = rendering.render(
            notice.kind, notice.params, locale=pref.locale, time_zone=pref.time_zone
        )
        notification = Notification(
            vendor_id=user.vendor_id, user_id=user.id, partner_id=user.partner_id,
            category=notice.category, kind=notice.kind, dedupe_key=notice.dedupe_key,
            subject_id=notice.subject_id, title=message.title, body=message.body,
            params=rendering.json_safe(notice.params), created_at=now,
        )  # fmt: skip
        session.add(notification)
        made.append(notification)
        if email and chosen is Channel.EMAIL:
            await session.flush()  # the mail refers to the notification
            await _queue(session, now, user, pref, notification, message)
    await session.flush()
    return made


async def _queue(
    session: AsyncSession,
    now: datetime,
    user: User,
    pref: Preferences,
    notification: Notification,
    message: rendering.Message,
) -> None:
    if not pref.digest:
        rendered = rendering.mail(
            [message], subject=message.title, locale=pref.locale, time_zone=pref.time_zone,
            name=user.display_name,
        )  # fmt: skip
        session.add(Mail(
            vendor_id=user.vendor_id, user_id=user.id, kind=MailKind.MESSAGE,
            notification_id=notification.id, to_address=user.email, locale=pref.locale,
            subject=rendered.subject, text_body=rendered.text, html_body=rendered.html,
            created_at=now, due_at=now,
        ))  # fmt: skip
        return
    due = next_digest(pref, now)
    key = f"{user.id}:{due.isoformat()}"
    digest = (await session.exec(select(Mail).where(Mail.digest_key == key))).first()
    if digest is None:
        # Rendered when sent, from its items (their count and text are known only then).
        digest = Mail(
            vendor_id=user.vendor_id, user_id=user.id, kind=MailKind.DIGEST,
            to_address=user.email, locale=pref.locale, subject="", text_body="",
            html_body="", created_at=now, due_at=due, digest_key=key,
        )  # fmt: skip
        session.add(digest)
        await session.flush()
    session.add(Mail(
        vendor_id=user.vendor_id, user_id=user.id, kind=MailKind.DIGEST_ITEM,
        notification_id=notification.id, digest_id=digest.id, to_address=user.email,
        locale=pref.locale, subject=message.title, text_body=message.body, html_body="",
        created_at=now, due_at=due,
    ))  # fmt: skip


async def partner_admins(session: AsyncSession, partner_id: uuid.UUID) -> list[uuid.UUID]:
    rows = await session.exec(
        select(User.id).where(
            User.partner_id == partner_id,
            User.role == Role.PARTNER_ADMIN,
            col(User.active).is_(True),
        )  # fmt: skip
    )
    return list(rows)


async def vendor_admins(session: AsyncSession, vendor_id: uuid.UUID) -> list[uuid.UUID]:
    rows = await session.exec(
        select(User.id).where(
            User.vendor_id == vendor_id,
            User.role == Role.VENDOR_ADMIN,
            col(User.active).is_(True),
        )  # fmt: skip
    )
    return list(rows)


Trigger = Callable[[AsyncSession, OutboxEvent], Awaitable[list[Notice]]]


def to_each(
    recipients: Sequence[uuid.UUID | None],
    event: OutboxEvent,
    category: Category,
    kind: str,
    params: dict[str, Any],
    subject_id: uuid.UUID | None,
) -> list[Notice]:
    """One notice per distinct recipient, keyed by the event (delivered once per user)."""
    seen = dict.fromkeys(r for r in recipients if r is not None)
    return [
        Notice(
            user_id=user_id,
            category=category,
            kind=kind,
            dedupe_key=f"event:{event.id}",
            params=params,
            subject_id=subject_id,
        )  # fmt: skip
        for user_id in seen
    ]
