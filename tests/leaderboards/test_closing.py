"""Closing what the clock ends (leaderboards.closing): frozen standings wait for the
credits of sales recorded before the end, for a bounded time."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from infra.clock import OffsetClock
from infra.db import Database
from leaderboards import repository
from leaderboards.closing import SETTLE_GRACE, close_all_due, close_due
from leaderboards.runtime import Leaderboards
from schema.context import Services
from tests.factories import Tenant, approve_sale, create_contest, dispatch
from tests.leaderboards.test_board_integrity import lost_writes
from tests.support import eventually, refused_inserts


def other_process(services: Services) -> Leaderboards:
    """A runtime without this process's dispatcher, as in a process that does not
    dispatch (CHANNELBOARD_DISPATCH=external) while another one is behind."""
    rt = services.leaderboards
    return Leaderboards(rt.db, rt.boards, rt.clock, rt.hub, dispatcher=None)


async def frozen_scores(db: Database, contest_id: uuid.UUID) -> list[int] | None:
    async with db.session() as session:
        if "all" not in await repository.frozen_periods(session, contest_id):
            return None
        rows = await session.exec(repository.frozen_standings(contest_id, "all"))
        return [row.score for row in rows]


async def test_the_final_standings_wait_for_credits_recorded_before_the_end(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    contest = await create_contest(db, clock, tenant, ends_at=clock.now() + timedelta(hours=1))
    await approve_sale(db, clock, tenant, partner=0, amount=500)
    await dispatch(services)
    rt = other_process(services)
    async with services.outbox.paused():  # this process's dispatcher is behind
        await approve_sale(db, clock, tenant, partner=1, amount=700)  # before the end
        clock.advance(timedelta(hours=1, seconds=1))
        assert not await close_due(rt, contest.id)  # waits for that credit
        assert await frozen_scores(db, contest.id) is None
    await dispatch(services)
    assert await close_due(rt, contest.id)
    assert await frozen_scores(db, contest.id) == [700, 500]


async def test_a_credit_that_never_comes_holds_the_end_for_a_bounded_time(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    contest = await create_contest(db, clock, tenant, ends_at=clock.now() + timedelta(hours=1))
    await approve_sale(db, clock, tenant, partner=0, amount=500)
    await dispatch(services)
    rt = other_process(services)
    async with services.outbox.paused():
        await approve_sale(db, clock, tenant, partner=1, amount=700)
        clock.advance(timedelta(hours=1, seconds=1))
        assert not await close_due(rt, contest.id)
        clock.advance(SETTLE_GRACE)
        assert await close_due(rt, contest.id)
        assert await frozen_scores(db, contest.id) == [500]


async def test_a_contest_that_cannot_freeze_does_not_stop_the_closer(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant, other_tenant: Tenant,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """One contest's freeze fails in the database, every time: the closer's pass still
    freezes the other vendor's contest, and the first once the fault is gone."""
    ends_at = clock.now() + timedelta(hours=1)
    failing = await create_contest(db, clock, tenant, ends_at=ends_at)
    healthy = await create_contest(db, clock, other_tenant, ends_at=ends_at)
    await approve_sale(db, clock, tenant, partner=0, amount=500)
    await approve_sale(db, clock, other_tenant, partner=0, amount=700)
    await dispatch(services)
    rt = other_process(services)
    async with refused_inserts(db, "contest_period", failing.id, column="contest_id"):
        clock.advance(timedelta(hours=1, seconds=1))
        await close_all_due(rt)  # (the app's closer may have been first)
        assert await frozen_scores(db, healthy.id) == [700]
        assert await frozen_scores(db, failing.id) is None
    assert f"{failing.id} (vendor {tenant.vendor.id})" in caplog.text
    await close_all_due(rt)
    assert await frozen_scores(db, failing.id) == [500]


async def test_final_standings_are_the_ledgers_when_redis_lost_credits_before_the_end(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """Redis lost a credit before the end (a replica that was behind took over; it kept
    the board's ``built``): the freeze copied the board as Redis held it, and the final
    standings missed the credit for good, while the board check (once a minute) had not
    come round yet. The close now checks the board against the ledger first."""
    contest = await create_contest(db, clock, tenant, ends_at=clock.now() + timedelta(hours=1))
    await approve_sale(db, clock, tenant, partner=0, amount=500)
    await dispatch(services)
    async with lost_writes(services, contest):
        await approve_sale(db, clock, tenant, partner=1, amount=700)
        await dispatch(services)
    clock.advance(timedelta(hours=1, seconds=1))
    rt = other_process(services)
    # (The app's closer may be first; while it rebuilds the board, this one waits.)
    await eventually(lambda: close_due(rt, contest.id), within=30)
    assert await frozen_scores(db, contest.id) == [700, 500]
