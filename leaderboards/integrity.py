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
  - a period whose seen set counts fewer events than the ledger has credits already
    applied (their outbox event dispatched: each was applied to Redis before it was
    marked; read from SQL before Redis, so a Redis that lost nothing holds at least those).
    A credit committed and not yet applied (in flight) is not counted, so not a loss.

On a loss the contest is rebuilt from the ledger (exact: the same rebuild as a settings
change), at a version above every version ever handed out (``rebuild``), and the new
version is announced, so subscribers and page caches move to the rebuilt board.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass

from sqlalchemy import func
from sqlmodel import col, select

from infra import passes
from infra.db import Database
from infra.outbox import OutboxEvent
from leaderboards import repository, versions
from leaderboards.boards import Boards
from leaderboards.models import Contest, ContestBoardVersion, ContestCredit, ContestPeriod
from leaderboards.rebuild import rebuild
from leaderboards.runtime import Leaderboards
from leaderboards.scoring import counts_call

log = logging.getLogger(__name__)

CHECK_INTERVAL = 60.0  # seconds between two checks of every live contest


@dataclass(frozen=True)
class Loss:
    reason: str  # a sentence for the log
    rebuilds: int  # the board's rebuild count when it was seen (``Boards.rebuilds``)


async def lost(db: Database, boards: Boards, contest_id: uuid.UUID) -> Loss | None:
    """What the contest's board in Redis lost, or None when it has everything SQL says it
    should, is not built (the next read or credit builds it), or is being rebuilt.

    SQL is read first, Redis after: the version bounds and, per period, the credits already
    applied (their outbox event is dispatched, and each was applied to Redis before it was
    marked). All of them only grow, so a Redis read after them holds at least as much
    unless it lost writes. (Read the other way round, a credit by another dispatcher, a
    period frozen or a rebuild's raised ceiling landing between the reads looked like a
    loss, and a busy contest's credits in flight made every check scan its whole ledger.)"""
    async with db.session() as session:
        applied = dict(
            (
                await session.exec(
                    select(ContestCredit.period_key, func.count())
                    .join(OutboxEvent, col(OutboxEvent.id) == col(ContestCredit.event_id))
                    .where(
                        ContestCredit.contest_id == contest_id,
                        col(OutboxEvent.dispatched_at).is_not(None),
                    )
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
    periods = sorted(applied)  # the seen sets that can show a loss: declared to the script
    reply = await boards.scripts.counts(keys=counts_call(boards.keys_of(contest_id), periods))
    if int(reply[0]) == 0 or int(reply[1]) == 1:
        return None
    rebuilds, version = int(reply[0]), int(reply[2])
    on_board = dict(zip(periods, (int(n) for n in reply[3:]), strict=True))
    if frozen is not None and version < frozen:
        return Loss(f"its version {version} is below its frozen period's {frozen}", rebuilds)
    if ceiling is not None and version < ceiling.ceiling - versions.HEADROOM:
        return Loss(f"its version {version} went back (ceiling {ceiling.ceiling})", rebuilds)
    for period in periods:
        have, want = on_board[period], applied[period]
        if have < want:
            return Loss(f"period {period} counts {have} credits of {want} applied", rebuilds)
    return None


async def check(rt: Leaderboards, contest_id: uuid.UUID) -> bool:
    """Rebuild the contest's board if Redis lost part of it, and announce the rebuilt
    board. Returns whether it did."""
    loss = await lost(rt.db, rt.boards, contest_id)
    if loss is None:
        return False
    log.warning("contest %s: Redis lost part of its board (%s); rebuilding", contest_id,
                loss.reason)  # fmt: skip
    # Every dispatcher checks at once when Redis comes back: one rebuild per loss will do.
    await rebuild(rt.db, rt.boards, rt.clock, contest_id, unless_rebuilt_since=loss.rebuilds)
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
            async with rt.checks:
                await check_all(rt)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("checking the contests' boards failed; retrying")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(interval):
                await woken.wait()
