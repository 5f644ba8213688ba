"""Which notifications a caller may see: their own, and only those of their vendor (and,
for a partner user, of their partner). An API key has no inbox."""

from __future__ import annotations

import uuid

from sqlalchemy import false, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from notifications.models import Notification
from partners.roles import Principal


def readable_notifications(principal: Principal) -> SelectOfScalar[Notification]:
    if principal.user_id is None:
        return select(Notification).where(false())
    stmt = select(Notification).where(
        Notification.user_id == principal.user_id, Notification.vendor_id == principal.vendor_id
    )
    if principal.is_partner:
        stmt = stmt.where(Notification.partner_id == principal.partner_id)
    return stmt


def unread(stmt: SelectOfScalar[Notification]) -> SelectOfScalar[Notification]:
    return stmt.where(col(Notification.read_at).is_(None))


async def unread_count(session: AsyncSession, principal: Principal) -> int:
    inner = unread(readable_notifications(principal)).subquery()
    return int((await session.exec(select(func.count()).select_from(inner))).one())


async def notifications_by_ids(
    session: AsyncSession, principal: Principal, ids: list[uuid.UUID]
) -> dict[uuid.UUID, Notification]:
    if not ids:
        return {}
    rows = await session.exec(
        readable_notifications(principal).where(col(Notification.id).in_(ids))
    )
    return {row.id: row for row in rows}


async def newer_than(
    session: AsyncSession, principal: Principal, after: uuid.UUID | None, limit: int = 50
) -> list[Notification]:
    """The caller's notifications after ``after`` (UUIDv7: in creation order), oldest first."""
    stmt = readable_notifications(principal)
    if after is not None:
        stmt = stmt.where(col(Notification.id) > after)
    return list(await session.exec(stmt.order_by(col(Notification.id)).limit(limit)))


async def latest_id(session: AsyncSession, principal: Principal) -> uuid.UUID | None:
    """The id of the caller's newest notification (None: none yet)."""
    stmt = readable_notifications(principal).order_by(col(Notification.id).desc()).limit(1)
    found = (await session.exec(stmt)).first()
    return found.id if found else None
