"""Which pilots a caller may read: vendor admins and finance, their vendor's; nobody else
(partner roles never, so no answer tells a partner a pilot exists)."""

from __future__ import annotations

import uuid
from collections.abc import Collection

from sqlalchemy import false
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from infra.db import for_change
from partners.roles import Principal
from pilots.models import Pilot, PilotAssignment
from pilots.policy import PILOTS, PilotOp


def readable_pilots(principal: Principal) -> SelectOfScalar[Pilot]:
    if not PILOTS.allows(principal, PilotOp.READ):
        return select(Pilot).where(false())
    return select(Pilot).where(Pilot.vendor_id == principal.vendor_id)


def readable_assignments(
    principal: Principal, pilot_id: uuid.UUID
) -> SelectOfScalar[PilotAssignment]:
    if not PILOTS.allows(principal, PilotOp.READ):
        return select(PilotAssignment).where(false())
    return (
        select(PilotAssignment)
        .where(
            PilotAssignment.vendor_id == principal.vendor_id,
            PilotAssignment.pilot_id == pilot_id,
        )
        .order_by(col(PilotAssignment.stratum), col(PilotAssignment.partner_id))
    )


async def pilots_by_ids(
    session: AsyncSession, principal: Principal, ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, Pilot]:
    rows = await session.exec(readable_pilots(principal).where(col(Pilot.id).in_(list(ids))))
    return {p.id: p for p in rows}


async def get_readable_pilot(
    session: AsyncSession, principal: Principal, pilot_id: uuid.UUID, *, lock: bool = False
) -> Pilot | None:
    """The pilot if the caller may see it; with ``lock``, locked to change it (``for_change``)."""
    statement = readable_pilots(principal).where(Pilot.id == pilot_id)
    if lock:
        statement = for_change(statement, Pilot)
    return (await session.exec(statement)).first()
