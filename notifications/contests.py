"""Contest notifications: winners told when a contest (or one of its periods) finishes, and
participants told when a prize is within reach near the end.

Who is told: in a rep contest the rep (the participant); in a partner contest the partner's
admins. Messages name only the reader's own rank, score gap and prize, never another
participant, so an anonymised contest stays anonymised.

"Within reach" (a clock-driven check, beside the outbox dispatcher): during the last
``REACH_WINDOW`` (24 hours) of a running period of a contest with prizes, a participant
ranked at most ``REACH_RANKS`` (3) places below the last prize-winning rank, whose score is
behind that rank's by at most ``REACH_SHARE_BP`` (10 %) of it, is told once per period:
how far behind it is and what the prize is. Contests ranked by share of target compare the
raw scores too, so a participant ahead on score but behind on share is not told."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from infra import passes
from infra.clock import Clock
from infra.db import Database
from infra.outbox import OutboxEvent
from leaderboards import repository as contests_repository
from leaderboards.boards import Boards
from leaderboards.events import ContestFinished
from leaderboards.models import Contest, Metric, ParticipantKind
from leaderboards.ranking import Row
from leaderboards.recurrence import Period, parse_recurrence, period_at
from leaderboards.winners import prize_for
from notifications.delivery import Notice, deliver, partner_admins
from notifications.models import Category, FiredTrigger, Notification
from partners.models import User

REACH_WINDOW = timedelta(hours=24)
REACH_RANKS = 3
REACH_SHARE_BP = 1_000


async def _recipients(
    session: AsyncSession, kind: ParticipantKind, participant_id: uuid.UUID, vendor_id: uuid.UUID
) -> list[uuid.UUID]:
    if kind is ParticipantKind.REP:
        user = await session.get(User, participant_id)
        return [user.id] if user is not None and user.vendor_id == vendor_id else []
    return await partner_admins(session, participant_id)


def _prize_params(prize: dict[str, Any] | None, currency: str) -> dict[str, Any]:
    prize = prize or {}
    minor = prize.get("amount_minor")
    return {
        "prize": str(prize.get("prize", "")) or None,
        "prize_minor": int(minor) if minor is not None else None,
        "currency": currency,
    }


async def contest_finished(session: AsyncSession, event: OutboxEvent) -> list[Notice]:
    """A contest or period finished: each winner is told its rank and prize."""
    finished = ContestFinished.parse(event.payload)
    contest = await session.get(Contest, finished.contest_id)
    if contest is None:
        return []
    notices: list[Notice] = []
    for winner in finished.winners:
        params = {
            "contest": finished.contest_name, "rank": winner.rank,
            "period": None if finished.final else finished.period,
            "prize": winner.prize or None, "prize_minor": winner.prize_minor,
            "currency": winner.currency,
        }  # fmt: skip
        for user_id in await _recipients(
            session, contest.participant_kind, winner.participant_id, contest.vendor_id
        ):
            notices.append(
                Notice(
                    user_id=user_id,
                    category=Category.CONTEST,
                    kind="contest_won",
                    dedupe_key=f"event:{event.id}:{winner.winner_id}",
                    params=params,
                    subject_id=contest.id,
                )  # fmt: skip
            )
    return notices


def _gap_params(contest: Contest, gap: int) -> dict[str, Any]:
    if contest.metric is Metric.REVENUE:
        return {"gap": None, "gap_minor": gap, "currency": contest.currency}
    return {"gap": gap, "gap_minor": None, "currency": contest.currency}


async def notify_within_reach(
    db: Database, clock: Clock, boards: Boards, *, email: bool
) -> list[Notification]:
    """One pass of the "prize within reach" check; returns the notifications made."""
    now = clock.now()
    async with db.session() as session:
        running = [
            c
            for c in await contests_repository.started_unfrozen_contests(session, now)
            if c.prizes and now < c.ends_at
        ]
    made: list[Notification] = []

    async def check(contest: Contest) -> int:
        window = (contest.starts_at, contest.ends_at)
        period = period_at(parse_recurrence(contest.recurrence), contest.time_zone, window, now)
        if period is None or period.ends_at - now > REACH_WINDOW:
            return 0
        last_prize_rank = max(int(p["to_rank"]) for p in contest.prizes)
        page = await boards.page(contest, period.key, 0, last_prize_rank + REACH_RANKS)
        if not page.built:
            return 0
        by_rank = [r for r in page.rows if r.rank <= last_prize_rank and r.score > 0]
        if not by_rank:
            return 0
        threshold = by_rank[-1]  # the lowest prize-winning row
        chasing = [
            (r, threshold.score - r.score)
            for r in page.rows
            if last_prize_rank < r.rank <= last_prize_rank + REACH_RANKS
            and 0 < threshold.score - r.score <= threshold.score * REACH_SHARE_BP // 10_000
        ]
        if not chasing:
            return 0
        told = await _reach(db, clock, contest, period, chasing, threshold.rank, email=email)
        made.extend(told)
        return len(told)

    # A contest at a time: one that cannot be checked does not hold back the others.
    await passes.each(
        "prize-within-reach check of contest",
        running,
        check,
        key=lambda c: f"{c.id} (vendor {c.vendor_id})",
    )
    return made


async def _reach(
    db: Database,
    clock: Clock,
    contest: Contest,
    period: Period,
    chasing: list[tuple[Row, int]],
    prize_rank: int,
    *,
    email: bool,
) -> list[Notification]:
    """Tell each chasing participant once per period (a trigger row per participant)."""
    keys = {
        f"prize-reach:{contest.id}:{period.key}:{row.participant_id}": (row, gap)
        for row, gap in chasing
    }
    async with db.session() as session:
        fired = set(
            await session.exec(
                select(FiredTrigger.key).where(col(FiredTrigger.key).in_(list(keys)))
            )
        )
    if not set(keys) - fired:
        return []  # told before: no write transaction
    try:
        async with db.transaction() as session:
            notices: list[Notice] = []
            for key, (row, gap) in keys.items():
                if key in fired:
                    continue
                session.add(
                    FiredTrigger(key=key, vendor_id=contest.vendor_id, fired_at=clock.now())
                )
                params = {
                    "contest": contest.name, "rank": row.rank, "prize_rank": prize_rank,
                    "ends_at": period.ends_at,
                    **_prize_params(prize_for(contest, prize_rank), contest.currency),
                    **_gap_params(contest, gap),
                }  # fmt: skip
                for user_id in await _recipients(
                    session, contest.participant_kind, row.participant_id, contest.vendor_id
                ):
                    notices.append(
                        Notice(
                            user_id=user_id,
                            category=Category.CONTEST,
                            kind="prize_within_reach",
                            dedupe_key=key,
                            params=params,
                            subject_id=contest.id,
                        )  # fmt: skip
                    )
            await session.flush()
            return await deliver(session, clock, notices, email=email)
    except IntegrityError:  # another process fired these first
        return []
