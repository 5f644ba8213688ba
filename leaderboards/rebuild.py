"""Standings rebuilt from the SQL credit ledger, and frozen into SQL when a period ends.

A rebuild writes shadow keys (named for that rebuild), then swaps them in with one Lua
script (readers never see a half-built board). From before it reads the ledger until the
swap, every credit applied to the old board is also noted in the contest's journal; the swap
returns those its snapshot of the ledger did not count, and the rebuild re-applies them
through the idempotent credit script, so a credit that landed on the old keys while the
shadow was being built is not lost. Which credits those are is decided by what the snapshot
saw, not by timestamps: hosts' clocks may differ (docs/dispatchers.md, "One clock").

One rebuild per contest at a time: a Redis lock, renewed while the rebuild runs; others
wait (for a dead rebuild's, until its short lease lapses). The swap happens only while the
lock is still the rebuild's: one that lost it (its process stalled past the lock's expiry
and another rebuild ran) drops its copy and starts again rather than swap in a board read
before the other's.

The same lock (``board_lock``) orders a rebuild and a freeze (``finalize_due``): the two
writers whose work must not interleave. A rebuild is not done at its swap: the credits it
re-applies after it (applied to the old board meanwhile) are missing from the board until
then, so a freeze that read the board in between froze standings without credits the board
had shown before and after (and, over several pages, could read some pages before the swap
and some after). A freeze holds the lock from before it reads the board until it has the
frozen standings' version; a rebuild waits for it, and it for a rebuild.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from infra import limits
from infra.clock import Clock
from infra.db import Database
from leaderboards import ranking, versions
from leaderboards.boards import Boards
from leaderboards.models import (
    Contest,
    ContestCredit,
    ContestPeriod,
    ContestStanding,
)
from leaderboards.recurrence import Period
from leaderboards.scoring import (
    LAYOUT,
    LOCK_LOST,
    UNDECLARED_PERIODS,
    BoardKeys,
    BoardMode,
    apply_credit,
    built_from,
    swap_call,
    target_for,
)
from leaderboards.winners import record_winners

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
# The rebuild lock's lease, renewed every LOCK_MS / 4 while the rebuild runs: short, since
# the lock of a rebuild that died (its process killed, or Redis restarted from its
# append-only file beneath it) holds up every other rebuild of the contest, and every read
# of a board not built yet, until it lapses (it was 120 s: reads hung for two minutes). A
# live rebuild whose event loop stalls past it loses the lock and starts again.
LOCK_MS = 15_000
CHUNK = 2_000
FREEZE = "freeze:"  # how a freeze's lock token begins (a rebuild's is plain hex)
SPLIT = 2**32  # a ledger total summed in two parts (``_rebuild_locked``)
# A shadow copy left by a rebuild that died expires (the swap makes the live keys persist).
SHADOW_TTL_MS = 24 * 3600 * 1000
# A freeze's copy of the board it reads (``freeze_period``), deleted once read: expires,
# should the freeze die before that.
SNAPSHOT_TTL_MS = 3600 * 1000
FREEZE_PAGE = 1000


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class LockLost(Exception):
    """The rebuild's lock expired (and another rebuild may have run): its copy is stale."""


async def ensure_built(db: Database, boards: Boards, clock: Clock, contest: Contest) -> None:
    """Rebuild the contest's standings if Redis lost them (flush, restart, failover)."""
    if not await boards.is_built(contest.id):
        await rebuild(db, boards, clock, contest.id, if_missing=True)


async def rebuild(
    db: Database,
    boards: Boards,
    clock: Clock,
    contest_id: uuid.UUID,
    *,
    progress: Progress | None = None,
    if_missing: bool = False,
    unless_rebuilt_since: int | None = None,
) -> int:
    """Rebuild one contest's boards from the ledger; returns the credits replayed.
    ``if_missing``: a board that another rebuild built meanwhile will do (Redis lost it,
    any build restores it). ``unless_rebuilt_since``: the board's rebuild count
    (``Boards.rebuilds``) when a loss was seen; a rebuild swapped in since then (by another
    dispatcher that saw the same loss) will do, so one loss costs one rebuild, not one per
    dispatcher. Otherwise, after another rebuild, rebuild again: it read the ledger and the
    contest before this caller's change (a contest's new settings, an operator's command)
    may have committed."""
    k = boards.keys_of(contest_id)

    async def done_by_another() -> bool:
        if if_missing:
            return await boards.is_built(contest_id)
        if unless_rebuilt_since is not None:
            return await boards.rebuilds(contest_id) != unless_rebuilt_since
        return False

    while True:
        token = uuid.uuid4().hex
        while not await boards.redis.set(k.lock, token, nx=True, px=LOCK_MS):
            # Someone else is rebuilding: wait for them rather than rebuilding beside them.
            await asyncio.sleep(0.05)
            if not await boards.redis.exists(k.lock) and await done_by_another():
                return 0
        if unless_rebuilt_since is not None and await done_by_another():
            await boards.scripts.release(keys=[k.lock], args=[token])
            return 0
        try:
            async with _held(boards, k, token, "rebuild-lock"):
                return await _rebuild_locked(db, boards, contest_id, token, progress)
        except LockLost:
            log.warning("rebuild of contest %s outlived its lock; rebuilding again", contest_id)


@contextlib.asynccontextmanager
async def _held(boards: Boards, k: BoardKeys, token: str, name: str) -> AsyncIterator[None]:
    """The board lock ``token`` has just taken, renewed while the block runs and released
    after it (a rebuild's, a freeze's)."""
    renewing = asyncio.create_task(_keep_lock(boards, k, token), name=name)
    try:
        yield
    finally:
        renewing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewing
        await boards.scripts.release(keys=[k.lock], args=[token])


@contextlib.asynccontextmanager
async def board_lock(
    boards: Boards, contest_id: uuid.UUID, *, wait: bool = True
) -> AsyncIterator[str | None]:
    """Hold the contest's board lock (the rebuilds' lock) for a freeze, renewed while the
    block runs: yields its token. ``wait`` false: yields None at once while a rebuild
    holds it (another freeze, a matter of moments, is waited for: both closers and every
    watching process close a contest at its boundary, and each must find it closed)."""
    k = boards.keys_of(contest_id)
    token = FREEZE + uuid.uuid4().hex
    while not await boards.redis.set(k.lock, token, nx=True, px=LOCK_MS):
        holder = await boards.redis.get(k.lock)
        if not wait and holder is not None and not _text(holder).startswith(FREEZE):
            yield None
            return
        await asyncio.sleep(0.05)
    async with _held(boards, k, token, "board-lock"):
        yield token


async def renew_lock(boards: Boards, k: BoardKeys, token: str) -> bool:
    """Extend the lock (and the journal) for LOCK_MS more if it is still ``token``'s."""
    return bool(await boards.scripts.renew(keys=[k.lock, k.journal], args=[token, LOCK_MS]))


async def _keep_lock(boards: Boards, k: BoardKeys, token: str) -> None:
    """Extend the lock (and the journal) while the rebuild runs, however long it takes."""
    while True:
        await asyncio.sleep(LOCK_MS / 4000)
        try:
            if not await renew_lock(boards, k, token):
                return  # lost: the swap will refuse
        except Exception:  # Redis unavailable for a moment: try again, the lock has time
            log.warning("could not renew the rebuild lock %s", k.lock, exc_info=True)


async def drop_untagged_keys(boards: Boards) -> int:
    """Delete board keys of older layouts: before hash tags (``{ns}:lb:<contest>:...``),
    and before the layout version (``{ns}:lb:{<contest>}:...`` without ``scoring.LAYOUT``
    after the tag; v1 packed first-to-reach ticks into the score). Keys are now
    ``{ns}:lb:{<contest>}:<LAYOUT>:...``: after an upgrade nothing reads the old ones (each
    contest is rebuilt from the ledger under its new keys on first use), they only take
    memory. SCAN walks every master of a cluster. Returns the number deleted."""
    prefix = boards.keys("lb", "")
    dropped = 0
    async for key in boards.redis.scan_iter(match=f"{prefix}*", count=1000):
        name = key.decode() if isinstance(key, bytes) else str(key)
        rest = name[len(prefix) :]
        tagged = rest.startswith("{") and "}" in rest
        if not tagged or not rest[rest.index("}") + 1 :].startswith(f":{LAYOUT}:"):
            dropped += int(await boards.redis.delete(key))
    return dropped


async def _rebuild_locked(
    db: Database,
    boards: Boards,
    contest_id: uuid.UUID,
    token: str,
    progress: Progress | None,
) -> int:
    k = boards.keys_of(contest_id)
    redis = boards.redis
    shadow = f"tmp:{token}:"
    # The journal first: every credit applied to the old board from now on is noted, so
    # one the snapshot below does not see is found again at the swap.
    await boards.scripts.journal(keys=[k.journal], args=[LOCK_MS])
    # One snapshot for the scores and the seen set: a credit committed between two reads
    # of their own would be in the seen set and not in the scores, and the re-apply below
    # (and the credit's own call) would take it for a duplicate: lost from the board.
    async with db.snapshot() as session:
        contest = await session.get(Contest, contest_id)
        if contest is None:
            return 0
        mode = BoardMode.of(contest)
        encoding = built_from(contest)
        totals = (
            await session.exec(
                select(  # type: ignore[call-overload]
                    ContestCredit.period_key,
                    ContestCredit.participant_id,
                    # The total in two sums that never pass 64 bits (SQLite's sum fails
                    # past them): each delta's quotient and remainder by 2**32, truncated
                    # toward zero on both databases, so quotient * 2**32 + remainder is it.
                    func.sum(ContestCredit.delta // SPLIT),
                    func.sum(ContestCredit.delta % SPLIT),
                    func.max(ContestCredit.tick),
                )
                .where(ContestCredit.contest_id == contest_id)
                .group_by(col(ContestCredit.period_key), col(ContestCredit.participant_id))
            )
        ).all()
        events = (
            await session.exec(
                select(ContestCredit.period_key, ContestCredit.event_id).where(
                    ContestCredit.contest_id == contest_id
                )
            )
        ).all()
    periods = sorted({p for p, _ in events} | {p for p, *_ in totals})
    shadow_keys = [key for period in periods for key in k.board(period, tmp=shadow)]
    total_steps = len(totals) + len(events)
    done = 0
    pipe = redis.pipeline(transaction=False)

    async def execute() -> None:
        for key in shadow_keys:  # before the keys exist, PEXPIRE does nothing: each time
            pipe.pexpire(key, SHADOW_TTL_MS)
        await pipe.execute()

    dense_counts: dict[tuple[str, int], int] = {}
    for i, (period, participant, high, low, tick) in enumerate(totals):
        z, raw_key, _dz, _dc, _seen = k.board(period, tmp=shadow)
        raw = int(high) * SPLIT + int(low)
        target = target_for(contest, participant)
        # The boards' saturating cap (infra.limits), as the credit scripts apply it: a
        # plain board keeps a total past the cap exactly in raw, as they do. Basis points
        # of a target floor toward minus infinity, as the scripts' exact division does
        # (scoring.share_of): the two must agree to the unit.
        what = f"contest {contest_id} {period} participant {participant}"
        value = limits.clamp_score(raw * 10000 // target if target else raw, what=what)
        if mode.rich or value != raw:
            pipe.hset(raw_key, str(participant), raw)
        if mode.scale > 1:  # first-to-reach: the reach key (ranking.member_key)
            pipe.hset(raw_key, f"t:{participant}", int(tick))
            pipe.zadd(z, {ranking.member_key(participant, int(tick)): value})
        else:
            pipe.zadd(z, {str(participant): value})
        dense_counts[(period, value)] = dense_counts.get((period, value), 0) + 1
        if i % CHUNK == CHUNK - 1:
            await execute()
            done += CHUNK
            if progress:
                progress(done, total_steps)
    if mode.dense:
        for (period, value), count in dense_counts.items():
            _z, _raw, dz, dc, _seen = k.board(period, tmp=shadow)
            pipe.zadd(dz, {str(value): value})
            pipe.hset(dc, str(value), count)
    await execute()
    done = len(totals)
    if progress:
        progress(done, total_steps)
    for start in range(0, len(events), CHUNK):
        for period, event_id in events[start : start + CHUNK]:
            pipe.sadd(k.board(period, tmp=shadow)[4], str(event_id))
        await execute()
        done = len(totals) + min(start + CHUNK, len(events))
        if progress:
            progress(done, total_steps)
    # The rebuilt board starts above every version ever handed out (a Redis that lost
    # writes counts from where its copy was), and the ceiling is raised before it shows.
    start_at = await versions.floor(db, contest_id)
    ceiling = await versions.cover(db, contest_id, start_at)
    stale: list[str] = []  # periods on the old board that the copy has not: dropped
    while True:
        call_keys, call_args = swap_call(k, shadow, token, start_at, periods, stale, encoding)
        reply = await boards.scripts.swap(keys=call_keys, args=call_args)
        if int(reply[0]) != UNDECLARED_PERIODS:
            break
        stale += [_text(p) for p in reply[1:]]  # credited meanwhile, or gone from the ledger
    if int(reply[0]) == LOCK_LOST:
        if shadow_keys:
            await redis.delete(*shadow_keys)
        raise LockLost(contest_id)
    # Credits applied to the old board that the snapshot did not count.
    missed = [uuid.UUID(_text(e)) for e in reply[1:]]
    for start in range(0, len(missed), CHUNK):
        async with db.session() as session:
            recent = (
                await session.exec(
                    select(ContestCredit).where(
                        ContestCredit.contest_id == contest_id,
                        col(ContestCredit.event_id).in_(missed[start : start + CHUNK]),
                    )
                )
            ).all()
        for credit in recent:
            await apply_credit(
                boards.scripts, k, mode, event_id=credit.event_id,
                participant=credit.participant_id, period_key=credit.period_key,
                delta=credit.delta, tick=credit.tick,
                target=target_for(contest, credit.participant_id),
            )  # fmt: skip
    version = await boards.version(contest_id)
    if version > ceiling - versions.HEADROOM // 2:  # a SQL write only when it is needed
        await versions.cover(db, contest_id, version)
    return len(events)


async def freeze_period(
    db: Database, boards: Boards, clock: Clock, contest: Contest, period: Period, *, token: str
) -> ContestPeriod:
    """Copy a closed period's final standings into SQL (idempotent), holding the board lock
    (``token``, ``board_lock``): no rebuild runs while the board is read. The board is read
    from a copy taken in one step (``Boards.snapshot``): credits do not take the lock."""
    # A board not built, or built before the contest's settings last changed (their rebuild
    # comes from the outbox, after the change's commit: it may be behind): its standings
    # are not the contest's (raw totals where targets now rank, the old style's ranks, the
    # old weights' totals). Rebuilt from the ledger first, which the change re-scored.
    k = boards.keys_of(contest.id)
    kept = await boards.redis.get(k.encoding)
    if not await boards.is_built(contest.id) or kept is None or _text(kept) != built_from(contest):
        await _rebuild_locked(db, boards, contest.id, token, None)
    # The pages are read from a copy of the board taken in one step: credits do not take
    # the lock, and a late one (past the settle grace) applied between two reads of the
    # live board could move a participant across the pages' boundary, frozen twice or
    # not at all. The copy is the board at one instant, ranked by the same script.
    copy = f"snap:{token}:"
    await boards.snapshot(contest.id, period.key, copy, SNAPSHOT_TTL_MS)
    rows: list[ranking.Row] = []
    try:
        start = 0
        while True:
            page = await boards.page(contest, period.key, start, FREEZE_PAGE, tmp=copy)
            rows.extend(page.rows)
            if len(page.rows) < FREEZE_PAGE:
                break
            start += FREEZE_PAGE
    finally:
        await boards.drop_snapshot(contest.id, period.key, copy)
    # Read while the lock was ours: a rebuild needs it to swap, and a lock lost (a stall
    # past its lease) is not had again, so a renewal that succeeds now proves no rebuild
    # swapped a board in, or had yet to re-apply its credits, while the pages were read.
    if not await renew_lock(boards, k, token):
        raise LockLost(contest.id)
    existing = await _frozen_period(db, contest.id, period.key)
    if existing is not None:
        return existing
    # The frozen board is a change a watcher sees: it continues the live board's versions
    # (and the next period's live board starts above it).
    version = int(await boards.redis.incr(boards.keys_of(contest.id).version))
    try:
        return await _insert_frozen(db, clock, contest, period, rows, version)
    except IntegrityError:  # another process froze it first
        found = await _frozen_period(db, contest.id, period.key)
        assert found is not None
        return found


async def _frozen_period(db: Database, contest_id: uuid.UUID, key: str) -> ContestPeriod | None:
    async with db.session() as session:
        return (
            await session.exec(
                select(ContestPeriod).where(
                    ContestPeriod.contest_id == contest_id, ContestPeriod.period_key == key
                )
            )
        ).first()


async def _insert_frozen(
    db: Database,
    clock: Clock,
    contest: Contest,
    period: Period,
    rows: list[ranking.Row],
    version: int,
) -> ContestPeriod:
    async with db.transaction() as session:
        frozen = ContestPeriod(
            contest_id=contest.id, period_key=period.key, starts_at=period.starts_at,
            ends_at=period.ends_at, frozen_at=clock.now(), participant_count=len(rows),
            version=version,
        )  # fmt: skip
        session.add(frozen)
        for position, row in enumerate(rows):
            session.add(
                ContestStanding(
                    contest_id=contest.id,
                    period_key=period.key,
                    participant_id=row.participant_id,
                    position=position,
                    rank=row.rank,
                    score=row.score,
                    rank_value=row.value,
                )  # fmt: skip
            )
        # Winners and ContestFinished commit with the standings: once per period.
        await record_winners(session, clock, contest, period, rows)
        return frozen


async def finalize_due(
    db: Database, boards: Boards, clock: Clock, contest: Contest, *, token: str | None = None
) -> bool:
    """Freeze every period that has closed; at the end of the window the whole contest.
    Returns True when the contest is (now) frozen. Holds the board lock (``board_lock``,
    waiting for a rebuild under way) unless the caller holds it (its ``token``)."""
    from leaderboards.models import ContestStatus  # noqa: PLC0415

    if contest.frozen_at is not None:
        return True
    if contest.status is not ContestStatus.SCHEDULED:
        return False
    if token is None:
        async with board_lock(boards, contest.id) as held:
            assert held is not None
            return await _finalize_locked(db, boards, clock, contest, held)
    return await _finalize_locked(db, boards, clock, contest, token)


async def _finalize_locked(
    db: Database, boards: Boards, clock: Clock, contest: Contest, token: str
) -> bool:
    from leaderboards.recurrence import parse_recurrence, periods_between  # noqa: PLC0415

    now = clock.now()
    async with db.session() as session:
        done = set(await _frozen_keys(session, contest.id))
    periods = periods_between(
        parse_recurrence(contest.recurrence), contest.time_zone,
        (contest.starts_at, contest.ends_at), until=now,
    )  # fmt: skip
    for period in periods:
        if period.ends_at <= now and period.key not in done:
            await freeze_period(db, boards, clock, contest, period, token=token)
    if now < contest.ends_at:
        return False
    async with db.transaction() as session:
        fresh = await session.get(Contest, contest.id)
        if fresh is not None and fresh.frozen_at is None:
            fresh.frozen_at = now
            session.add(fresh)
    return True


async def _frozen_keys(session: object, contest_id: uuid.UUID) -> list[str]:
    from sqlmodel.ext.asyncio.session import AsyncSession  # noqa: PLC0415

    assert isinstance(session, AsyncSession)
    rows = await session.exec(
        select(ContestPeriod.period_key).where(ContestPeriod.contest_id == contest_id)
    )
    return list(rows)
