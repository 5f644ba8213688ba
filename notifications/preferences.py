"""A user's notification preferences: language, time zone, the daily digest, and a channel
per category. Malformed preferences are reported with a code each and change nothing."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from sqlmodel.ext.asyncio.session import AsyncSession

from infra.clock import Clock
from infra.codes import is_time_zone
from infra.errors import DomainError, DomainErrors
from notifications.errors import NotificationErrorCode as Code
from notifications.models import Category, Channel, NotificationSettings
from notifications.policy import NOTIFICATIONS, NotificationOp
from notifications.rendering import LOCALES
from partners.roles import Principal

# Every category goes to the inbox and by e-mail unless the user says otherwise.
DEFAULT_CHANNEL = Channel.EMAIL
DEFAULT_DIGEST_HOUR = 8


@dataclass(frozen=True)
class Preferences:
    locale: str = "en"
    time_zone: str = "UTC"
    digest: bool = False
    digest_hour: int = DEFAULT_DIGEST_HOUR
    channels: dict[Category, Channel] = field(default_factory=dict)

    def channel(self, category: Category) -> Channel:
        return self.channels.get(category, DEFAULT_CHANNEL)

    @classmethod
    def of(cls, row: NotificationSettings | None) -> Preferences:
        if row is None:
            return cls()
        channels: dict[Category, Channel] = {}
        for name, value in row.channels.items():
            if name in Category.__members__ and value in Channel.__members__:
                channels[Category(name)] = Channel(value)
        return cls(
            locale=row.locale, time_zone=row.time_zone, digest=row.digest,
            digest_hour=row.digest_hour, channels=channels,
        )  # fmt: skip


async def preferences_of(session: AsyncSession, user_id: uuid.UUID) -> Preferences:
    return Preferences.of(await session.get(NotificationSettings, user_id))


def _user(principal: Principal) -> uuid.UUID:
    if principal.user_id is None:
        raise DomainError(Code.NOT_A_USER, "An API key has no notification preferences.")
    return principal.user_id


async def read_preferences(session: AsyncSession, principal: Principal) -> Preferences:
    """The caller's own preferences (every signed-in user has them; an API key the defaults)."""
    if principal.user_id is None:
        return Preferences()
    return await preferences_of(session, principal.user_id)


async def update_preferences(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    locale: str | None = None,
    time_zone: str | None = None,
    digest: bool | None = None,
    digest_hour: int | None = None,
    channels: list[tuple[Category, Channel]] | None = None,
) -> Preferences:
    """Change what is given (None: keep); categories not named keep their channel."""
    NOTIFICATIONS.require(principal, NotificationOp.PREFERENCES_UPDATE)
    user_id = _user(principal)
    errors: list[DomainError] = []
    if locale is not None and locale not in LOCALES:
        errors.append(DomainError(
            Code.INVALID_LOCALE, f"Notifications are written in {', '.join(LOCALES)}.", "locale"
        ))  # fmt: skip
    if time_zone is not None and not is_time_zone(time_zone):
        errors.append(DomainError(Code.INVALID_TIME_ZONE, "Not an IANA time zone.", "time_zone"))
    if digest_hour is not None and not 0 <= digest_hour <= 23:
        errors.append(
            DomainError(Code.INVALID_DIGEST_HOUR, "The digest hour is 0 to 23.", "digest_hour")
        )
    seen: set[Category] = set()
    for i, (category, _channel) in enumerate(channels or []):
        if category in seen:
            errors.append(DomainError(
                Code.DUPLICATE_CATEGORY, f"{category.value} is given twice.",
                f"channels.{i}.category",
            ))  # fmt: skip
        seen.add(category)
    if errors:
        raise DomainErrors(errors) if len(errors) > 1 else errors[0]
    row = await session.get(NotificationSettings, user_id)
    if row is None:
        row = NotificationSettings(
            user_id=user_id, vendor_id=principal.vendor_id, updated_at=clock.now()
        )
    if locale is not None:
        row.locale = locale
    if time_zone is not None:
        row.time_zone = time_zone
    if digest is not None:
        row.digest = digest
    if digest_hour is not None:
        row.digest_hour = digest_hour
    if channels:
        row.channels = {**row.channels, **{c.value: ch.value for c, ch in channels}}
    row.updated_at = clock.now()
    session.add(row)
    await session.flush()
    return Preferences.of(row)
