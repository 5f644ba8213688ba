"""Expiry: writing down approvals whose protection period has ended."""

from __future__ import annotations

import uuid

from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from deal_registration.registrations.lifecycle import record_transition
from deal_registration.registrations.models import DealAction, DealRegistration, DealStatus
from infra.clock import Clock


async def expire_due(
    session: AsyncSession, clock: Clock, *, vendor_id: uuid.UUID | None = None
) -> int:
    """Write down expiries that the clock has already decided (readers derive them anyway):
    APPROVED registrations whose period has ended become EXPIRED, with a recorded
    transition and a status notice. Safe to run concurrently; returns how many it moved."""
    now = clock.now()
    stmt = select(DealRegistration.id).where(
        DealRegistration.status == DealStatus.APPROVED, col(DealRegistration.expires_at) <= now
    )
    if vendor_id is not None:
        stmt = stmt.where(DealRegistration.vendor_id == vendor_id)
    due = list(await session.exec(stmt))
    moved = 0
    for registration_id in due:
        result = await session.exec(
            update(DealRegistration)
            .where(
                col(DealRegistration.id) == registration_id,
                col(DealRegistration.status) == DealStatus.APPROVED,
            )
            .values(status=DealStatus.EXPIRED, updated_at=now, closed_at=now)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            continue  # another sweep got there first
        moved += 1
        registration = await session.get(DealRegistration, registration_id, populate_existing=True)
        assert registration is not None
        await record_transition(
            session, clock, None, registration, DealAction.EXPIRE, DealStatus.APPROVED,
            "Protection period ended.",
        )  # fmt: skip
    return moved
