"""Contest periods in the display time zone, across daylight-saving changes, and their
archived final standings."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from infra.clock import OffsetClock
from infra.db import Database
from leaderboards import repository
from leaderboards.rebuild import finalize_due
from leaderboards.recurrence import (
    RecurrenceError,
    find_period,
    parse_recurrence,
    period_at,
    periods_between,
)
from schema.context import Services
from tests.factories import Tenant, approve_sale, create_contest, dispatch

BERLIN = "Europe/Berlin"
WINDOW = (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_daily_periods_start_at_local_midnight_across_spring_forward() -> None:
    daily = parse_recurrence("FREQ=DAILY")
    # 2026-03-29: clocks go from 02:00 CET to 03:00 CEST; that day has 23 hours.
    day = period_at(daily, BERLIN, WINDOW, utc(2026, 3, 29, 12))
    assert day is not None
    assert (day.key, day.starts_at, day.ends_at) == (
        "2026-03-29",
        utc(2026, 3, 28, 23),
        utc(2026, 3, 29, 22),
    )
    assert day.ends_at - day.starts_at == timedelta(hours=23)
    before = period_at(daily, BERLIN, WINDOW, utc(2026, 3, 28, 22, 59))
    after = period_at(daily, BERLIN, WINDOW, utc(2026, 3, 29, 22, 0))
    assert before is not None
    assert after is not None
    assert (before.key, after.key) == ("2026-03-28", "2026-03-30")


def test_weekly_and_monthly_periods_across_fall_back() -> None:
    weekly = parse_recurrence("FREQ=WEEKLY")
    # 2026-10-25: clocks go back from 03:00 CEST to 02:00 CET; that week has 169 hours.
    week = period_at(weekly, BERLIN, WINDOW, utc(2026, 10, 25, 1, 30))
    assert week is not None
    assert (week.key, week.starts_at, week.ends_at) == (
        "W2026-10-19",
        utc(2026, 10, 18, 22),
        utc(2026, 10, 25, 23),
    )
    monthly = parse_recurrence("MONTHLY")
    month = period_at(monthly, BERLIN, WINDOW, utc(2026, 10, 31, 23, 30))
    assert month is not None
    assert month.key == "2026-11"
    assert month.starts_at == utc(2026, 10, 31, 23)
    assert find_period(monthly, BERLIN, WINDOW, "2026-11") == month
    assert find_period(monthly, BERLIN, WINDOW, "2030-01") is None
    periods = periods_between(weekly, BERLIN, WINDOW)
    assert all(a.ends_at == b.starts_at for a, b in zip(periods, periods[1:], strict=False))
    assert periods[0].starts_at == WINDOW[0]
    assert periods[-1].ends_at == WINDOW[1]


@pytest.mark.parametrize(
    "text", ["FREQ=HOURLY", "FREQ=DAILY;BYDAY=MO", "WKST=XX", "FREQ=DAILY;WKST=MO"]
)
def test_recurrences_that_do_not_parse(text: str) -> None:
    with pytest.raises(RecurrenceError):
        parse_recurrence(text)


async def test_daily_periods_score_separately_and_freeze_when_they_close(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    clock.freeze(utc(2026, 3, 29, 20))  # 22:00 in Berlin, the 23-hour day
    contest = await create_contest(
        db, clock, tenant, recurrence="FREQ=DAILY", time_zone=BERLIN,
        starts_at=utc(2026, 3, 27), ends_at=utc(2026, 4, 5),
    )  # fmt: skip
    await approve_sale(db, clock, tenant, partner=0, amount=500, at=utc(2026, 3, 29, 21, 59))
    await approve_sale(db, clock, tenant, partner=1, amount=700, at=utc(2026, 3, 29, 22, 0))
    await dispatch(services)
    boards = services.leaderboards.boards
    day = await boards.page(contest, "2026-03-29", 0, 10)
    next_day = await boards.page(contest, "2026-03-30", 0, 10)
    assert [(r.participant_id, r.score) for r in day.rows] == [(tenant.partners[0].id, 500)]
    assert [(r.participant_id, r.score) for r in next_day.rows] == [(tenant.partners[1].id, 700)]

    clock.advance(timedelta(hours=3))  # the 29th has closed in Berlin
    assert not await finalize_due(db, boards, clock, contest)
    async with db.session() as session:
        frozen = await repository.frozen_periods(session, contest.id)
        standings = (
            await session.exec(repository.frozen_standings(contest.id, "2026-03-29"))
        ).all()
    assert set(frozen) == {"2026-03-27", "2026-03-28", "2026-03-29"}
    assert [(s.participant_id, s.rank, s.score) for s in standings] == [
        (tenant.partners[0].id, 1, 500)
    ]
    # A late reversal or sale cannot change a frozen period; the contest ends and freezes.
    clock.advance(timedelta(days=10))
    assert await finalize_due(db, boards, clock, contest)
    async with db.session() as session:
        # 27 Mar (from 01:00 local) to 5 Apr (until 02:00 local): ten local days
        assert len(await repository.frozen_periods(session, contest.id)) == 10


async def test_closers_racing_freeze_a_period_once_at_a_higher_version(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """Every process watching a contest closes it at the same boundary."""
    contest = await create_contest(db, clock, tenant, ends_at=clock.now() + timedelta(hours=1))
    await approve_sale(db, clock, tenant, partner=0, amount=500)
    await dispatch(services)
    boards = services.leaderboards.boards
    live = await boards.version(contest.id)
    clock.advance(timedelta(hours=2))
    results = await asyncio.gather(
        *(finalize_due(db, boards, clock, contest) for _ in range(4)), return_exceptions=True
    )
    assert results == [True] * 4
    async with db.session() as session:
        frozen = await repository.frozen_periods(session, contest.id)
        standings = (await session.exec(repository.frozen_standings(contest.id, "all"))).all()
    assert list(frozen) == ["all"]
    assert frozen["all"].version > live
    assert [s.score for s in standings] == [500]
