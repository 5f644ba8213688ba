"""Boards Redis lost part of: found against SQL, and rebuilt.

``built`` tells that Redis has a contest's board, not that it has all of it. Redis
replication is asynchronous: a replica promoted when its master failed may lack the
master's last acknowledged writes, and a server restarted from an older snapshot (RDB, an
AOF synced each second) lacks its last ones. Such a Redis keeps the contest's ``built`` key,
so nothing rebuilt it: the credits it lost stayed off the board for good (their outbox
events were dispatched and do not run again), and its version counter went back, so the
next change reused a version subscribers and page caches had seen with other standings.

Two checks find it:

- while scoring (``Leaderboards._apply``), at no cost: a credit's new version at or below a
  version this process announced or heard for the contest (versions never go back);
- ``check`` against SQL (``run_board_checks``: when the dispatcher starts, every minute, and
  when the Redis connection was lost and made again), for every started, unfrozen contest:

  - the board's version below the last frozen period's (``ContestPeriod.version``), or more
    than ``HEADROOM`` below the SQL ceiling (``versions``: the ceiling is only ever raised to
    ``HEADROOM`` above a version handed out, so the version Redis counts is at least
    ``ceiling - HEADROOM``: a lost rebuild's swap or a lost freeze shows here);
  - a period whose seen set counts fewer events than the ledger has credits (Redis read
    first, so equal counts prove every credit is on the board), then, only then, which of
    the ledger's credits whose outbox event is dispatched (so applied to Redis before the
    read) the seen set lacks. A credit committed and not yet applied (in flight) is not a
    loss; one dispatched and missing is (or a scoring run that gave up: it belongs on the
    board too).

On a loss the contest is rebuilt from the ledger (exact: the same rebuild as a settings
change), at a version above every version ever handed out (``rebuild``), and the new
version is announced, so subscribers and page caches move to the rebuilt board.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

from sqlalchemy import func
from sqlmodel import col, select

from infra import passes
from infra.outbox import OutboxEvent
from leaderboards import repository, versions
from leaderboards.models import Contest, ContestBoardVersion, ContestCredit, ContestPeriod
from leaderboards.rebuild import rebuild
from leaderboards.runtime import Leaderboards

log = logging.getLogger(__name__)

CHECK_INTERVAL = 60.0  # seconds between two checks of every live contest
CHUNK = 1_000  # events per membership check (one short script call)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def lost(rt: Leaderboards, contest_id: uuid.UUID) -> str | None:
    """What the contest's board in Redis lost (a sentence for the log), or None when it
    has everything SQL says it should, is not built (the next read or credit builds it), or
    is being rebuilt."""
    k = rt.boards.keys_of(contest_id)
    reply = await rt.boards.scripts.counts(
        keys=[k.periods, k.built, k.lock, k.version], args=[k.base]
    )
    if int(reply[0]) == 0 or int(reply[1]) == 1:
        return None
    version = int(reply[2])
    on_board = {_text(p): int(n) for p, n in zip(reply[3::2], reply[4::2], strict=True)}
    async with rt.db.session() as session:
        credited = dict(
            (
                await session.exec(
                    select(ContestCredit.period_key, func.count())
                    .where(ContestCredit.contest_id == contest_id)
                    .group_by(col(ContestCredit.period_key))
                )
            ).all()
        )
        ceiling = await session.get(ContestBoardVersion, contest_id)
        frozen = (
            await session.exec(
                select(func.max(ContestPeriod.version)).where(
                    ContestPeriod.contest_id == contest_id
                )
            )
        ).one()
    if frozen is not None and version < frozen:
        return f"its version {version} is below its frozen period's {frozen}"
    if ceiling is not None and version < ceiling.ceiling - versions.HEADROOM:
        return f"its version {version} went back (ceiling {ceiling.ceiling})"
    for period, count in sorted(credited.items()):
        if on_board.get(period, 0) < count:
            missing = await _missing(rt, contest_id, period)
            if missing:
                return f"{missing} dispatched credits are missing from period {period}"
    return None


async def _missing(rt: Leaderboards, contest_id: uuid.UUID, period: str) -> int:
    """How many of the period's credits whose event is dispatched the seen set lacks (read
    after the ledger: each was applied before it was marked dispatched). 0 while a rebuild
    runs: its swap and its re-apply of the journal are not one step."""
    async with rt.db.session() as session:
        applied = (
            await session.exec(
                select(ContestCredit.event_id)
                .join(OutboxEvent, col(OutboxEvent.id) == col(ContestCredit.event_id))
                .where(
                    ContestCredit.contest_id == contest_id,
                    ContestCredit.period_key == period,
                    col(OutboxEvent.dispatched_at).is_not(None),
                )
            )
        ).all()
    k = rt.boards.keys_of(contest_id)
    seen = k.board(period)[4]
    missing = 0
    for start in range(0, len(applied), CHUNK):
        reply = await rt.boards.scripts.missing(
            keys=[seen, k.built, k.lock], args=[str(e) for e in applied[start : start + CHUNK]]
        )
        if int(reply[0]) == 1:
            return 0
        missing += len(reply) - 1
    return missing


async def check(rt: Leaderboards, contest_id: uuid.UUID) -> bool:
    """Rebuild the contest's board if Redis lost part of it, and announce the rebuilt
    board. Returns whether it did."""
    reason = await lost(rt, contest_id)
    if reason is None:
        return False
    log.warning("contest %s: Redis lost part of its board (%s); rebuilding", contest_id, reason)
    await rebuild(rt.db, rt.boards, rt.clock, contest_id)
    await rt.notify(contest_id, await rt.boards.version(contest_id))
    return True


async def check_all(rt: Leaderboards) -> int:
    """One pass over the started, unfrozen contests; returns how many were rebuilt."""
    async with rt.db.session() as session:
        contests = await repository.started_unfrozen_contests(session, rt.clock.now())

    async def one(contest: Contest) -> int:
        return int(await check(rt, contest.id))

    return await passes.each(
        "checking a contest's board", contests, one, key=lambda c: f"{c.id} (vendor {c.vendor_id})"
    )


async def run_board_checks(rt: Leaderboards, interval: float = CHECK_INTERVAL) -> None:
    """Check every live contest's board now, then every ``interval`` seconds, and at once
    when the Redis connection was lost and made again (a failover, a restart): the
    dispatcher's companion, like the closer."""
    woken = asyncio.Event()

    def heard(message: bytes | None) -> None:
        if message is None:  # reconnected: Redis may have lost writes meanwhile
            woken.set()

    try:
        await rt.hub.watch(rt.hub.channel("lb", "checks"), heard)
    except Exception:  # the checks still run each interval
        log.warning("board checks: cannot watch for Redis reconnections", exc_info=True)
    while True:
        woken.clear()
        try:
            await check_all(rt)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("checking the contests' boards failed; retrying")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(interval):
                await woken.wait()
