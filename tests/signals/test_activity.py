"""Active users: noted in memory, written in one batch per flush, once a day each."""

from __future__ import annotations

import uuid

from sqlmodel import select

from infra.clock import OffsetClock
from infra.db import Database
from partners.roles import Role
from signals.activity import ActiveUsers
from signals.models import SignalActiveUser
from signals.snapshots import values_at
from tests.factories import Tenant


async def rows(db: Database) -> set[tuple[uuid.UUID, uuid.UUID]]:
    async with db.session() as session:
        return {(r.partner_id, r.user_id) for r in await session.exec(select(SignalActiveUser))}


async def test_notes_are_written_in_batches_once_a_day(
    db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    activity = ActiveUsers(db, clock, interval=3600)
    rep, admin = tenant.user(Role.PARTNER_REP), tenant.user(Role.PARTNER_ADMIN)
    partner = tenant.partners[0].id
    for _ in range(3):  # three requests: one row
        activity.note(tenant.vendor.id, partner, rep.id)
    activity.note(tenant.vendor.id, partner, admin.id)
    assert await rows(db) == set()  # nothing written per request
    assert await activity.flush() == 2
    assert await rows(db) == {(partner, rep.id), (partner, admin.id)}
    async with db.session() as session:
        today = (await values_at(session, tenant.vendor.id, clock.now().date()))[partner]
    assert today["active_users_7d"] == 2
    activity.note(tenant.vendor.id, partner, rep.id)  # already written today
    assert await activity.flush() == 0
    # A user deleted since it was seen is dropped instead of failing every later flush.
    activity.note(tenant.vendor.id, partner, uuid.uuid4())
    activity.note(tenant.vendor.id, tenant.partners[1].id, tenant.user(Role.PARTNER_REP, 1).id)
    assert await activity.flush() == 1
    assert (tenant.partners[1].id, tenant.user(Role.PARTNER_REP, 1).id) in await rows(db)
    assert len(await rows(db)) == 3
