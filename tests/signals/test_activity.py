"""Active users: noted in memory, written in one batch per flush, once a day each."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlmodel import select

from infra.clock import OffsetClock
from infra.db import Database
from partners.roles import Role
from signals import maintenance
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


async def test_a_note_written_after_midnight_counts_in_its_own_days_snapshot(
    db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """A user seen just before midnight and written just after counts in that day's
    snapshot, though the day's snapshots were taken by then (before, only today's was
    re-taken, and yesterday's kept the count from before the note)."""
    activity = ActiveUsers(db, clock, interval=3600)
    partner, rep = tenant.partners[0].id, tenant.user(Role.PARTNER_REP)
    evening = datetime(2026, 12, 5, 23, 59, 30, tzinfo=UTC)
    clock.freeze(evening)
    async with db.transaction() as session:
        await maintenance.take_due(session, clock, tenant.vendor.id)
    activity.note(tenant.vendor.id, partner, rep.id)
    clock.freeze(evening + timedelta(minutes=1))
    async with db.transaction() as session:  # the day's job: yesterday re-taken, today taken
        await maintenance.take_due(session, clock, tenant.vendor.id)
    assert await activity.flush() == 1
    async with db.session() as session:
        yesterday = (await values_at(session, tenant.vendor.id, evening.date()))[partner]
    assert yesterday["active_users_7d"] == 1
