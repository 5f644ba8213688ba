"""Basis points of a target, live and rebuilt: a board ranking by share of target shows
floor(total * 10000 / target) (toward minus infinity, then capped at ``MAX_SCORE``),
exactly, whether the credit script computed it or a rebuild from the ledger did. Doubles
got it wrong by one past a total of about 9 * 10**11 (total * 10000 past 2**53), at a
target near its bound, and at .5 past 2**52 (rounded to even instead of floored)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from infra import limits
from infra.clock import OffsetClock
from infra.db import Database
from leaderboards import crediting, integrity
from leaderboards.models import Contest, ContestCredit
from leaderboards.rebuild import rebuild
from leaderboards.scoring import BoardMode, apply_credit
from schema.context import Services
from tests.factories import Tenant, approve_sale, create_contest, dispatch, reverse_sale

MAX = limits.MAX_SCORE
EVENT = limits.MAX_EVENT_SCORE

# (total, target) per participant of one board. Each board has a participant that doubles
# showed off by one (checked by reverting the exact division), beside ones they got right.
BOARDS = {
    "just past 2^53/10^4": [
        (900_719_925_474, 1),  # 9007199254740000: the last total * 10000 within 2**53
        (900_719_925_475, 1),  # past the cap
        (900_720_807_117, 1_073_742_491),  # 8388610, doubles said 8388611
        (-900_720_764_335, 67_108_917),  # -134217748, doubles said -134217747
    ],
    "about 10^12 (the largest sale)": [
        (10**12 + 8, 588_235_294_122_353),  # 16, doubles said 17
        (10**12 + 1, 144_927_536_232_029),  # 68, doubles said 69
        (-(10**12), 3),
    ],
    "targets at their bounds": [
        (MAX - 1, limits.MAX_TARGET),  # 9999, doubles said 10000
        (MAX, limits.MAX_TARGET),
        (2**53 + 5, limits.MAX_TARGET),
        (-(MAX - 1), limits.MAX_TARGET),
        (-1, limits.MAX_TARGET),
        (-900_719_925_474, 1),
    ],
    ".5 past 2^52": [
        (2**53 + 3, 20_000),  # 2**52 + 1 (and a half), doubles said 2**52 + 2
        (-(2**53 + 1), 20_000),  # -2**52 - 1 (and a half), doubles said -2**52
        (3, 20_000),
        (-3, 20_000),
    ],
}


def rule(total: int, target: int) -> int:
    """The rebuild's rule, in exact integers."""
    return max(-MAX, min(total * 10000 // target, MAX))


def deltas_for(total: int) -> list[int]:
    """Credits of at most one event's worth each that sum to ``total``; a negative total is
    a sale taken back and more (reversals past it)."""
    out = [] if total >= 0 else [limits.MAX_SALE_AMOUNT_MINOR]
    rest = total - sum(out)
    while rest:
        step = max(-EVENT, min(rest, EVENT))
        out.append(step)
        rest -= step
    return out


Board = list[tuple[uuid.UUID, int, int, int]]


async def board_of(services: Services, contest: Contest) -> Board:
    page = await services.leaderboards.boards.page(contest, "all", 0, 20)
    return [(r.participant_id, r.rank, r.score, r.value) for r in page.rows]


async def ledger(
    db: Database,
    clock: OffsetClock,
    tenant: Tenant,
    contest: Contest,
    credits: list[tuple[uuid.UUID, int]],
) -> list[ContestCredit]:
    """Ledger rows for ``credits`` (participant, delta), each for its own source event (a
    sale from before the contest, so nothing else credits it), as the outbox writes them.

    Call it inside ``services.outbox.paused()`` and apply the rows to the board before the
    block ends, as the outbox does: an event is marked dispatched only once its credits
    are on the board. Left to the app's dispatcher, the sales were dispatched while their
    credits were not yet on the board, and the app's board check (each minute,
    ``integrity.lost``) took them for writes Redis lost: it rebuilt the board from the
    ledger under the test, and the test's own credits came back duplicates."""
    rows = []
    for participant, delta in credits:
        source = await approve_sale(db, clock, tenant, at=clock.now() - timedelta(days=2))
        rows.append(
            ContestCredit(
                contest_id=contest.id, event_id=source.id, event_type=source.type,
                period_key="all", participant_id=participant, delta=delta, tick=0,
                occurred_at=clock.now(), description="credit", created_at=clock.now(),
            )
        )  # fmt: skip
    async with db.transaction() as session:
        session.add_all(rows)
    return rows


@pytest.mark.parametrize("path", ["batched", "one at a time"])
@pytest.mark.parametrize("totals", list(BOARDS.values()), ids=list(BOARDS))
async def test_share_of_target_is_exact_live_and_rebuilt(
    services: Services,
    db: Database,
    clock: OffsetClock,
    tenant: Tenant,
    totals: list[tuple[int, int]],
    path: str,
) -> None:
    people = [uuid.UUID(int=i + 1) for i in range(len(totals))]
    contest = await create_contest(
        db, clock, tenant,
        targets={str(p): target for p, (_, target) in zip(people, totals, strict=True)},
    )  # fmt: skip
    await dispatch(services)  # the (empty) board is built
    credits = [
        (p, d) for p, (total, _) in zip(people, totals, strict=True) for d in deltas_for(total)
    ]
    boards = services.leaderboards.boards
    async with services.outbox.paused():  # applied before their events are dispatched
        rows = await ledger(db, clock, tenant, contest, credits)
        # The app's board check, had it run now, finds nothing lost: the rows are in flight.
        assert not await integrity.check(services.leaderboards, contest.id)
        if path == "batched":  # as the outbox applies them: the batch script
            batches = crediting.plan(rows, {contest.id: contest}, boards.keys_of)
            assert all(v > 0 for v in await crediting.apply(boards.scripts, batches))
        else:  # as a rebuild re-applies its journal: the one-credit script
            mode = BoardMode.of(contest)
            for row in rows:
                version = await apply_credit(
                    boards.scripts, boards.keys_of(contest.id), mode, event_id=row.event_id,
                    participant=row.participant_id, period_key="all", delta=row.delta, tick=0,
                    target=totals[people.index(row.participant_id)][1],
                )  # fmt: skip
                assert version > 0
    live = await board_of(services, contest)
    expected = {
        p: (max(-MAX, min(total, MAX)), rule(total, target))
        for p, (total, target) in zip(people, totals, strict=True)
    }
    assert {pid: (score, value) for pid, _, score, value in live} == expected
    await rebuild(db, boards, clock, contest.id)
    assert await board_of(services, contest) == live
    for pid, rank, score, value in live:
        _, standing = await boards.standing(contest, "all", pid)
        assert (standing.rank, standing.score, standing.value) == (rank, score, value)


async def test_large_sales_rank_by_exact_share_of_target_through_the_outbox(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    p0, p1 = (p.id for p in tenant.partners[:2])
    targets = {p0: 1_073_742_491, p1: 588_235_294_122_353}
    contest = await create_contest(
        db, clock, tenant, targets={str(p): t for p, t in targets.items()}
    )
    taken_back = await approve_sale(db, clock, tenant, partner=0, amount=5)
    await approve_sale(db, clock, tenant, partner=0, amount=900_720_807_117)
    await reverse_sale(db, clock, tenant, taken_back)
    await approve_sale(db, clock, tenant, partner=1, amount=limits.MAX_SALE_AMOUNT_MINOR)
    await approve_sale(db, clock, tenant, partner=1, amount=8)
    await dispatch(services)
    live = await board_of(services, contest)
    assert live == [
        (p0, 1, 900_720_807_117, 8_388_610),  # doubles said 8388611
        (p1, 2, 10**12 + 8, 16),  # doubles said 17
    ]
    await rebuild(db, services.leaderboards.boards, clock, contest.id)
    assert await board_of(services, contest) == live


async def test_a_target_saved_past_its_bound_is_held_to_it_live_and_rebuilt(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """A contest saved before targets were bounded (2**60 + 1 was taken): the board divides
    by ``MAX_TARGET`` instead, live and rebuilt alike (a double cannot hold the target)."""
    who = uuid.UUID(int=1)
    contest = await create_contest(db, clock, tenant, targets={str(who): 5})
    async with db.transaction() as session:
        stored = await session.get(Contest, contest.id)
        assert stored is not None
        stored.targets = {str(who): 2**60 + 1}
        session.add(stored)
    contest.targets = {str(who): 2**60 + 1}
    await dispatch(services)
    boards = services.leaderboards.boards
    async with services.outbox.paused():  # applied before their events are dispatched
        rows = await ledger(db, clock, tenant, contest, [(who, d) for d in deltas_for(MAX)])
        assert not await integrity.check(services.leaderboards, contest.id)
        batches = crediting.plan(rows, {contest.id: contest}, boards.keys_of)
        assert all(v > 0 for v in await crediting.apply(boards.scripts, batches))
    live = await board_of(services, contest)
    assert live == [(who, 1, MAX, rule(MAX, limits.MAX_TARGET))]  # 10000
    await rebuild(db, boards, clock, contest.id)
    assert await board_of(services, contest) == live
