"""What the clock alone changes on a board: a contest starts, a period closes (its standings
freeze and the next period's board takes over), the contest ends (its final standings
freeze). No event marks these instants, so two parties watch the clock and close what is
due here, then tell every process: the closer (``run_closer``, beside the outbox
dispatcher), for every contest whether watched or not, and each process's live feed of a
watched contest (leaderboards.fanout), so that its subscribers get the next board on time.
Reads never close anything: until the closer has run, an ended period is served live."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import datetime, timedelta

from infra import passes
from leaderboards import integrity, repository
from leaderboards.models import Contest, ContestStatus
from leaderboards.rebuild import board_lock, finalize_due
from leaderboards.recurrence import Period, parse_recurrence, period_at, periods_between
from leaderboards.runtime import Leaderboards
from leaderboards.scoring import SCORED_EVENT_TYPES

log = logging.getLogger(__name__)

# How long a period's freeze waits for credits of sales recorded before its end (a
# dispatcher that is behind, or down: the standings then freeze without them).
SETTLE_GRACE = timedelta(seconds=30)


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


async def close_due(rt: Leaderboards, contest_id: uuid.UUID) -> bool:
    """Freeze the periods that have closed (and the contest, once it has ended); announce
    the new version so that every process's watchers and page caches move on. Idempotent.

    Returns False, freezing nothing, while sales or deals recorded before the boundary still
    wait in the outbox to be credited (for at most ``SETTLE_GRACE`` after it), or while the
    board is being rebuilt: frozen standings are final, so they wait for the last credits
    and for a board that is the ledger's. The caller tries again."""
    # Not while this process's dispatcher credits events: a credit applied after the
    # freeze copied the board would be missing from the frozen standings.
    hold = rt.dispatcher.paused() if rt.dispatcher is not None else contextlib.nullcontext()
    async with hold:
        now = rt.clock.now()
        async with rt.db.session() as session:
            contest = await session.get(Contest, contest_id)
            if contest is None:
                return True
            period = _unclosed(contest, now)
            if period is None:
                return True
            ended = now >= contest.ends_at  # then the contest itself is still to close
            if not ended and await repository.frozen_period(session, contest.id, period.key):
                return True
            if now < period.ends_at + SETTLE_GRACE and await repository.credits_pending(
                session, contest.vendor_id, SCORED_EVENT_TYPES, before=period.ends_at
            ):
                return False
        # Frozen standings are final: copied from a board Redis lost credits of (a replica
        # that was behind took over), they would miss them for good. The board check runs
        # once a minute; the freeze does not wait for it: it checks (and rebuilds) first.
        await integrity.check(rt, contest_id)
        # Then it holds the board lock, which every rebuild holds from before it reads the
        # ledger until its last re-applied credit (leaderboards.rebuild): the standings are
        # read from a whole board, never between a rebuild's swap and its re-applied
        # credits. A rebuild under way: try again later (another freeze is waited for).
        async with board_lock(rt.boards, contest_id, wait=False) as token:
            if token is None:
                return False
            before = await rt.boards.version(contest_id)
            await finalize_due(rt.db, rt.boards, rt.clock, contest, token=token)
            after = await rt.boards.version(contest_id)
    if after != before:
        await rt.notify(contest_id, after)
    return True


def _unclosed(contest: Contest, now: datetime) -> Period | None:
    """The latest ended period, when the contest may still have something to close."""
    if contest.status is not ContestStatus.SCHEDULED or contest.frozen_at is not None:
        return None
    return last_closed(contest, now)


def last_closed(contest: Contest, now: datetime) -> Period | None:
    """The latest of the contest's periods that has ended by ``now``, if any."""
    window = (contest.starts_at, contest.ends_at)
    rec = parse_recurrence(contest.recurrence)
    if now >= contest.ends_at:
        return periods_between(rec, contest.time_zone, window)[-1]
    current = period_at(rec, contest.time_zone, window, now)
    if current is None or current.starts_at <= contest.starts_at:
        return None
    return period_at(rec, contest.time_zone, window, current.starts_at - timedelta(microseconds=1))


async def close_all_due(rt: Leaderboards) -> int:
    """One pass over the published, unfrozen contests that have started: close those with
    an ended period not frozen yet. Returns how many were closed."""
    now = rt.clock.now()
    async with rt.db.session() as session:
        candidates = await repository.started_unfrozen_contests(session, now)
        due = [(c, p) for c in candidates if (p := last_closed(c, now)) is not None]
        frozen = await repository.frozen_pairs(session, [(c.id, p.key) for c, p in due])
    # An ended contest is closed once its last period is frozen and so is the contest.
    todo = [c for c, p in due if (c.id, p.key) not in frozen or now >= c.ends_at]

    async def close(contest: Contest) -> int:
        return int(await close_due(rt, contest.id))

    return await passes.each(
        "closing contest", todo, close, key=lambda c: f"{c.id} (vendor {c.vendor_id})"
    )


async def run_closer(rt: Leaderboards, interval: float = 1.0) -> None:
    """Close contests and periods as the clock ends them, whether or not anyone watches
    (the dispatcher's companion: inline in each API process, or in `channelboard
    dispatch`). Reads never freeze anything themselves."""
    while True:
        try:
            await close_all_due(rt)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("closing ended contest periods failed; retrying")
        await asyncio.sleep(interval)
