"""What the clock alone changes on a board: a contest starts, a period closes (its standings
freeze and the next period's board takes over), the contest ends (its final standings
freeze). No event marks these instants, so whoever shows a board live watches the clock
(leaderboards.fanout) and closes what is due here, then tells every process."""

from __future__ import annotations

import uuid
from datetime import datetime

from leaderboards.consumer import Leaderboards
from leaderboards.models import Contest, ContestStatus
from leaderboards.rebuild import finalize_due
from leaderboards.recurrence import parse_recurrence, period_at


def next_boundary(contest: Contest, after: datetime) -> datetime | None:
    """The first instant later than ``after`` at which the contest's board changes by
    itself (start, end of a period, end), or None when none is coming."""
    if contest.status is not ContestStatus.SCHEDULED or contest.frozen_at is not None:
        return None
    if after < contest.starts_at:
        return contest.starts_at
    if after >= contest.ends_at:
        return None
    window = (contest.starts_at, contest.ends_at)
    period = period_at(parse_recurrence(contest.recurrence), contest.time_zone, window, after)
    return period.ends_at if period is not None else contest.ends_at


async def close_due(rt: Leaderboards, contest_id: uuid.UUID) -> None:
    """Freeze the periods that have closed (and the contest, once it has ended); announce
    the new version so that every process's watchers and page caches move on. Idempotent."""
    async with rt.db.session() as session:
        contest = await session.get(Contest, contest_id)
    if contest is None:
        return
    before = await rt.boards.version(contest_id)
    await finalize_due(rt.db, rt.boards, rt.clock, contest)
    after = await rt.boards.version(contest_id)
    if after != before:
        await rt.notify(contest_id, after)
