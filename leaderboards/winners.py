"""Contest finish: who won what when a period's standings freeze, and finance's approval of
a money prize.

Winners are recorded in the transaction that freezes a period's standings
(``rebuild.freeze_period``), together with the ``ContestFinished`` outbox event, so a
period has its winners and its event exactly once. A money prize (``amount_minor`` on the
contest's prize) waits for FINANCE: approving it records ``ContestPrizeApproved``, which
earnings credits as a PRIZE ledger entry (``earnings.prizes``, wired in the composition
root: earnings and leaderboards do not know each other).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from infra.clock import Clock
from infra.errors import DomainError
from infra.outbox import record_event
from infra.text import free_text_problem
from leaderboards import ranking
from leaderboards.errors import ContestErrorCode as Code
from leaderboards.events import ContestFinished, ContestPrizeApproved, FinishedWinner
from leaderboards.models import Contest, ContestWinner, ParticipantKind, PrizeStatus
from leaderboards.policy import CONTESTS, ContestOp
from leaderboards.recurrence import Period, find_period, parse_recurrence
from partners.audit_log import AuditEntity, log_change
from partners.models import Partner, User
from partners.roles import Principal


def prize_for(contest: Contest, rank: int) -> dict[str, Any] | None:
    """The contest's prize for a rank, if any."""
    for prize in contest.prizes:
        if int(prize["from_rank"]) <= rank <= int(prize["to_rank"]):
            return prize
    return None


def winning(contest: Contest, rows: Sequence[ranking.Row]) -> list[ranking.Row]:
    """The rows that win: every rank a prize covers (rank 1 when the contest has none),
    with a positive score (a participant whose sales were all reversed wins nothing)."""
    if contest.prizes:
        return [r for r in rows if r.score > 0 and prize_for(contest, r.rank) is not None]
    return [r for r in rows if r.score > 0 and r.rank == 1]


async def record_winners(
    session: AsyncSession,
    clock: Clock,
    contest: Contest,
    period: Period,
    rows: Sequence[ranking.Row],
) -> list[ContestWinner]:
    """Record a frozen period's winners and its ``ContestFinished`` event, in the caller's
    transaction (the one inserting the frozen standings, which makes it once per period)."""
    won = winning(contest, rows)
    partners = await _partners_of(session, contest, [r.participant_id for r in won])
    now = clock.now()
    winners: list[ContestWinner] = []
    for row in won:
        partner_id = partners.get(row.participant_id)
        if partner_id is None:  # a participant deleted since it scored: nobody to pay
            continue
        prize = prize_for(contest, row.rank) or {}
        minor = prize.get("amount_minor")
        winner = ContestWinner(
            vendor_id=contest.vendor_id, contest_id=contest.id, period_key=period.key,
            participant_id=row.participant_id, partner_id=partner_id,
            rep_user_id=row.participant_id
            if contest.participant_kind is ParticipantKind.REP
            else None,
            rank=row.rank, score=row.score, prize=str(prize.get("prize", ""))[:200],
            prize_minor=int(minor) if minor is not None else None, currency=contest.currency,
            prize_status=PrizeStatus.PENDING if minor is not None else PrizeStatus.NONE,
            created_at=now,
        )  # fmt: skip
        session.add(winner)
        winners.append(winner)
    await session.flush()
    finished = ContestFinished(
        contest_id=contest.id, vendor_id=contest.vendor_id, contest_name=contest.name,
        period=period.key, period_starts_at=period.starts_at, period_ends_at=period.ends_at,
        final=period.ends_at >= contest.ends_at, anonymised=contest.anonymise,
        winners=tuple(
            FinishedWinner(
                winner_id=w.id, rank=w.rank, participant_id=w.participant_id,
                partner_id=w.partner_id, score=w.score, prize=w.prize,
                prize_minor=w.prize_minor, currency=w.currency,
            )
            for w in winners
        ),
    )  # fmt: skip
    await record_event(
        session, clock, vendor_id=contest.vendor_id, type=finished.type,
        aggregate_id=contest.id, payload=finished.to_payload(), occurred_at=period.ends_at,
    )  # fmt: skip
    return winners


async def _partners_of(
    session: AsyncSession, contest: Contest, participants: list[uuid.UUID]
) -> dict[uuid.UUID, uuid.UUID]:
    """participant -> partner organisation (a rep contest's participants are users)."""
    if not participants:
        return {}
    if contest.participant_kind is ParticipantKind.PARTNER:
        found = await session.exec(
            select(Partner.id).where(
                Partner.vendor_id == contest.vendor_id, col(Partner.id).in_(participants)
            )
        )
        return {p: p for p in found}
    rows = await session.exec(
        select(User.id, User.partner_id).where(
            User.vendor_id == contest.vendor_id, col(User.id).in_(participants)
        )
    )
    return {u: p for u, p in rows if p is not None}


async def approve_prize(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    winner_id: uuid.UUID,
    note: str = "",
) -> ContestWinner:
    """Finance approves a winner's money prize: it is credited to the winner's earnings
    (``ContestPrizeApproved``, handled after commit). Audited; approving twice is refused."""
    CONTESTS.require(principal, ContestOp.APPROVE_PRIZE)
    note = note.strip()
    if len(note) > 500:
        raise DomainError(Code.TOO_LONG, "At most 500 characters.", "note")
    if problem := free_text_problem(note):
        raise DomainError(Code.INVALID_CHARACTERS, problem, "note")
    winner = (
        await session.exec(
            select(ContestWinner)
            .where(ContestWinner.id == winner_id, ContestWinner.vendor_id == principal.vendor_id)
            .with_for_update()
        )
    ).first()
    if winner is None:
        raise DomainError(Code.NOT_FOUND, "No such winner.", "id")
    if winner.prize_status is PrizeStatus.NONE or winner.prize_minor is None:
        raise DomainError(
            Code.NO_MONEY_PRIZE, "This winner's prize is not money; nothing to credit.", "id"
        )
    if winner.prize_status is PrizeStatus.APPROVED:
        raise DomainError(Code.ALREADY_APPROVED, "This prize is already approved.", "id")
    contest = await session.get(Contest, winner.contest_id)
    assert contest is not None
    now = clock.now()
    winner.prize_status = PrizeStatus.APPROVED
    winner.approved_by_id = principal.user_id
    winner.approved_at = now
    session.add(winner)
    await session.flush()
    period = find_period(
        parse_recurrence(contest.recurrence), contest.time_zone,
        (contest.starts_at, contest.ends_at), winner.period_key,
    )  # fmt: skip
    approved = ContestPrizeApproved(
        winner_id=winner.id, contest_id=contest.id, vendor_id=contest.vendor_id,
        contest_name=contest.name, period=winner.period_key,
        period_ends_at=period.ends_at if period is not None else contest.ends_at,
        rank=winner.rank, partner_id=winner.partner_id, rep_user_id=winner.rep_user_id,
        prize=winner.prize, amount_minor=winner.prize_minor, currency=winner.currency,
        approved_by_id=principal.user_id,
    )  # fmt: skip
    await record_event(
        session, clock, vendor_id=contest.vendor_id, type=approved.type,
        aggregate_id=winner.id, payload=approved.to_payload(),
    )  # fmt: skip
    await log_change(
        session, principal, clock, action="contest_winner.prize_approve",
        entity_type=AuditEntity.CONTEST_PRIZE, entity_id=winner.id,
        before={"prize_status": PrizeStatus.PENDING.value},
        after={
            "prize_status": PrizeStatus.APPROVED.value, "contest_id": str(contest.id),
            "period": winner.period_key, "rank": winner.rank,
            "partner_id": str(winner.partner_id), "amount_minor": winner.prize_minor,
            "currency": winner.currency,
        },
        reason=note or None,
    )  # fmt: skip
    return winner
