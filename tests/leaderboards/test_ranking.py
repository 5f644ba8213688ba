"""Ranking styles and tie-breaks at score and time boundaries, and the double-precision
limit of the first-to-reach encoding."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from infra.clock import OffsetClock
from infra.db import Database
from leaderboards import ranking
from leaderboards.models import Contest, RankingStyle
from leaderboards.scoring import BoardMode, apply_credit
from schema.context import Services
from tests.factories import Tenant, approve_sale, create_contest, create_tenant, dispatch


@pytest.fixture
async def big_tenant(db: Database, clock: OffsetClock) -> Tenant:
    async with db.transaction() as session:
        return await create_tenant(session, clock, partners=5)


async def ranks(services: Services, contest: Contest, start: int = 0, count: int = 10) -> list:
    page = await services.leaderboards.boards.page(contest, "all", start, count)
    return [(r.rank, r.score, r.gap_to_above) for r in page.rows]


async def seed_scores(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant, scores: list[int]
) -> None:
    base = clock.now()
    for i, score in enumerate(scores):
        # partner i reaches its score i minutes after the base instant
        await approve_sale(
            db, clock, tenant, partner=i, amount=score, at=base + timedelta(minutes=i)
        )
    await dispatch(services)


@pytest.mark.parametrize(
    ("style", "expected"),
    [
        (RankingStyle.COMPETITION, [1, 2, 2, 4, 5]),
        (RankingStyle.DENSE, [1, 2, 2, 3, 4]),
        (RankingStyle.FIRST_TO_REACH, [1, 2, 3, 4, 5]),
    ],
)
async def test_ranking_styles(
    services: Services, db: Database, clock: OffsetClock, big_tenant: Tenant,
    style: RankingStyle, expected: list[int],
) -> None:  # fmt: skip
    contest = await create_contest(db, clock, big_tenant, ranking_style=style)
    await seed_scores(services, db, clock, big_tenant, [300, 200, 200, 100, 99])
    rows = await ranks(services, contest)
    assert [r[0] for r in rows] == expected
    assert [r[1] for r in rows] == [300, 200, 200, 100, 99]
    assert [r[2] for r in rows] == [None, 100, 0, 100, 1]
    # A page starting inside the tie ranks its first row as the tie does.
    assert [r[0] for r in await ranks(services, contest, start=2, count=2)] == expected[2:4]


async def test_standing_of_a_tied_participant(
    services: Services, db: Database, clock: OffsetClock, big_tenant: Tenant
) -> None:
    contest = await create_contest(db, clock, big_tenant)
    await seed_scores(services, db, clock, big_tenant, [300, 200, 200, 100])
    boards = services.leaderboards.boards
    _, standing = await boards.standing(contest, "all", big_tenant.partners[2].id)
    assert (standing.rank, standing.score, standing.tied_with) == (2, 200, 1)
    assert standing.nemesis is not None
    assert standing.nemesis.participant_id == big_tenant.partners[0].id
    assert (standing.nemesis.rank, standing.gap_to_next) == (1, 100)
    assert "competition" in ranking.tie_rule(contest.ranking_style, standing)
    _, last = await boards.standing(contest, "all", big_tenant.partners[3].id)
    assert (last.rank, last.percentile) == (4, 25.0)
    _, nobody = await boards.standing(contest, "all", big_tenant.partners[4].id)
    assert (nobody.rank, nobody.score, nobody.on_board) == (5, 0, False)


async def test_first_to_reach_uses_the_moment_the_total_was_reached(
    services: Services, db: Database, clock: OffsetClock, big_tenant: Tenant
) -> None:
    contest = await create_contest(db, clock, big_tenant, ranking_style=RankingStyle.FIRST_TO_REACH)
    base = clock.now()
    # Partner 0 reaches 200 at minute 5 (100 + 100); partner 1 reaches 200 at minute 3.
    await approve_sale(db, clock, big_tenant, partner=0, amount=100, at=base + timedelta(minutes=1))
    await approve_sale(db, clock, big_tenant, partner=1, amount=200, at=base + timedelta(minutes=3))
    await approve_sale(db, clock, big_tenant, partner=0, amount=100, at=base + timedelta(minutes=5))
    # Partners 2 and 3 reach 50 within the same minute: the fixed fallback order decides.
    await approve_sale(db, clock, big_tenant, partner=2, amount=50, at=base + timedelta(minutes=7))
    await approve_sale(
        db, clock, big_tenant, partner=3, amount=50, at=base + timedelta(minutes=7, seconds=59)
    )
    await dispatch(services)
    page = await services.leaderboards.boards.page(contest, "all", 0, 10)
    order = [r.participant_id for r in page.rows]
    assert order[:2] == [big_tenant.partners[1].id, big_tenant.partners[0].id]
    same_minute = sorted([big_tenant.partners[2].id, big_tenant.partners[3].id], reverse=True)
    assert order[2:] == same_minute
    assert [r.rank for r in page.rows] == [1, 2, 3, 4]


def test_encoding_is_exact_up_to_the_documented_limit() -> None:
    for value in (0, 1, ranking.MAX_EXACT_VALUE - 1, ranking.MAX_EXACT_VALUE, -5):
        for tick in (0, 1, ranking.MAX_TICK - 1, ranking.MAX_TICK):
            assert ranking.decode(ranking.encode(value, tick)) == (value, tick)
    # One past the limit the score needs 54 bits: odd encodings are rounded away, here
    # even into the next value.
    beyond = ranking.MAX_EXACT_VALUE + 1
    assert ranking.decode(ranking.encode(beyond, 0)) != (beyond, 0)


async def test_first_to_reach_order_holds_at_the_limit_and_breaks_beyond_it(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    contest = await create_contest(db, clock, tenant, ranking_style=RankingStyle.FIRST_TO_REACH)
    await dispatch(services)  # ContestChanged: the (empty) board is built
    boards = services.leaderboards.boards
    keys = boards.keys_of(contest.id)
    mode = BoardMode.of(contest)
    early, late = uuid.UUID(int=1), uuid.UUID(int=2)  # late sorts first among equal scores

    async def credit(period: str, who: uuid.UUID, value: int, tick: int) -> None:
        await apply_credit(
            boards.scripts, keys, mode, event_id=uuid.uuid4(), participant=who,
            period_key=period, delta=value, tick=tick, target=0,
        )  # fmt: skip

    async def order(period: str) -> list[uuid.UUID]:
        return [r.participant_id for r in (await boards.page(contest, period, 0, 10)).rows]

    limit = ranking.MAX_EXACT_VALUE
    await credit("at-limit", early, limit, 10)
    await credit("at-limit", late, limit, 11)
    assert await order("at-limit") == [early, late]
    # Beyond the limit the one-minute difference is lost to rounding: the member order
    # decides instead (the documented limit).
    await credit("beyond", early, limit * 2 + 2, 10)
    await credit("beyond", late, limit * 2 + 2, 11)
    assert await order("beyond") == [late, early]
