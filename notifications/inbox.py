"""Reading one's inbox: marking one notification or all of them read."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import update
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from infra.clock import Clock
from infra.errors import DomainError
from notifications.errors import NotificationErrorCode as Code
from notifications.models import Notification
from notifications.policy import NOTIFICATIONS, NotificationOp
from notifications.repository import readable_notifications, unread
from partners.roles import Principal


async def mark_read(
    session: AsyncSession, principal: Principal, clock: Clock, *, notification_id: uuid.UUID
) -> Notification:
    """Mark one of the caller's notifications read (again: no change, no error)."""
    NOTIFICATIONS.require(principal, NotificationOp.MARK_READ)
    found = (
        await session.exec(
            readable_notifications(principal).where(Notification.id == notification_id)
        )
    ).first()
    if found is None:
        raise DomainError(Code.NOT_FOUND, "No such notification.", "id")
    if found.read_at is None:
        found.read_at = clock.now()
        session.add(found)
        await session.flush()
    return found


async def mark_all_read(
    session: AsyncSession, principal: Principal, clock: Clock, *, before: datetime | None = None
) -> int:
    """Mark the caller's unread notifications read (those created before ``before``, if
    given); returns how many were marked."""
    NOTIFICATIONS.require(principal, NotificationOp.MARK_ALL_READ)
    if principal.user_id is None:
        raise DomainError(Code.NOT_A_USER, "An API key has no inbox.")
    stmt = unread(readable_notifications(principal))
    if before is not None:
        stmt = stmt.where(col(Notification.created_at) < before)
    ids = stmt.with_only_columns(col(Notification.id))
    result = await session.execute(
        update(Notification)
        .where(col(Notification.id).in_(ids.scalar_subquery()))
        .values(read_at=clock.now())
    )
    await session.flush()
    return int(result.rowcount)  # type: ignore[attr-defined]
