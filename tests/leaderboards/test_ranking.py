"""Ranking styles and tie-breaks at score and time boundaries, and the double-precision
limit of the first-to-reach encoding."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from infra import limits
from infra.clock import OffsetClock
from infra.db import Database
from leaderboards import ranking
from leaderboards import service as contests
from leaderboards.models import Contest, RankingStyle
from leaderboards.scoring import BoardMode, apply_credit
from partners.roles import Role
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


def test_reach_keys_round_trip_and_sort_earlier_first() -> None:
    who = uuid.UUID(int=7)
    for tick in (0, 1, ranking.MAX_TICK - 1, ranking.MAX_TICK):
        assert ranking.parse_member(ranking.member_key(who, tick), ranking.TIE_SCALE) == (
            who,
            tick,
        )
    # Redis orders equal scores by member bytes and ZREVRANGE reverses them: the earlier
    # reach must be the greater key, at every tick (fixed width).
    keys = [ranking.member_key(who, tick) for tick in range(0, ranking.MAX_TICK + 1, 4099)]
    assert sorted(keys, reverse=True) == keys
    assert ranking.parse_member(str(who), 1) == (who, 0)


async def test_first_to_reach_order_is_exact_past_the_old_packing_limit(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """Value and tick were packed in one double, exact to 2**33 - 1 (85.9 million in
    cents): past it the minute was rounded away and the member order decided. The reach
    key keeps the minute over the whole exact range of a score."""
    contest = await create_contest(db, clock, tenant, ranking_style=RankingStyle.FIRST_TO_REACH)
    await dispatch(services)  # ContestChanged: the (empty) board is built
    boards = services.leaderboards.boards
    keys = boards.keys_of(contest.id)
    mode = BoardMode.of(contest)
    early, late = uuid.UUID(int=1), uuid.UUID(int=2)  # late sorts first among equal keys

    async def credit(period: str, who: uuid.UUID, value: int, tick: int) -> None:
        await apply_credit(
            boards.scripts, keys, mode, event_id=uuid.uuid4(), participant=who,
            period_key=period, delta=value, tick=tick, target=0,
        )  # fmt: skip

    async def order(period: str) -> list[tuple[uuid.UUID, int, int, int]]:
        page = await boards.page(contest, period, 0, 10)
        return [(r.participant_id, r.rank, r.score, r.tick) for r in page.rows]

    old_limit = 2**33 - 1
    for period, value in [
        ("at-old-limit", old_limit),
        ("beyond", old_limit * 2 + 2),
        ("at-cap", limits.MAX_SCORE),
    ]:
        await credit(period, early, value, 10)
        await credit(period, late, value, 11)
        assert await order(period) == [(early, 1, value, 10), (late, 2, value, 11)], period
        _, standing = await boards.standing(contest, period, late)
        assert (standing.rank, standing.tied_with, standing.tick) == (2, 1, 11)
        assert standing.nemesis is not None
        assert (standing.nemesis.participant_id, standing.nemesis.tick) == (early, 10)
    # A later credit moves the reach moment (the latest of the events): a raise to a new
    # value re-keys the member, and the old key is gone.
    await credit("beyond", early, 5, 20)
    await credit("beyond", late, 5, 12)
    value = old_limit * 2 + 7
    assert await order("beyond") == [(late, 1, value, 12), (early, 2, value, 20)]
    assert await services.redis.zcard(keys.board("beyond")[0]) == 2


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (RankingStyle.COMPETITION, RankingStyle.FIRST_TO_REACH),
        (RankingStyle.FIRST_TO_REACH, RankingStyle.COMPETITION),
    ],
)
async def test_a_read_between_a_style_change_and_its_rebuild_shows_the_board_it_finds(
    services: Services, db: Database, clock: OffsetClock, big_tenant: Tenant,
    before: RankingStyle, after: RankingStyle,
) -> None:  # fmt: skip
    """A change of ranking style commits before its ContestChanged rebuilds the board (from
    the outbox, after commit). A read meanwhile finds the old style's members (ids where
    reach keys were expected, or the reverse): it shows them (it failed: a member parsed
    as the other layout), and the rebuild then ranks by the new style."""
    contest = await create_contest(db, clock, big_tenant, ranking_style=before)
    base = clock.now()
    first, second = big_tenant.partners[0].id, big_tenant.partners[1].id
    await approve_sale(db, clock, big_tenant, partner=0, amount=100, at=base)
    await approve_sale(db, clock, big_tenant, partner=1, amount=200, at=base)
    await dispatch(services)
    async with db.transaction() as session:
        changed = await contests.update_contest(
            session, big_tenant.principal(Role.VENDOR_ADMIN), clock, contest_id=contest.id,
            changes={"ranking_style": after},
        )  # fmt: skip
    boards = services.leaderboards.boards
    for _ in range(2):  # before the rebuild, then after it
        page = await boards.page(changed, "all", 0, 10)
        assert [(r.participant_id, r.rank, r.score) for r in page.rows] == [
            (second, 1, 200),
            (first, 2, 100),
        ]
        _, standing = await boards.standing(changed, "all", first)
        assert (standing.on_board, standing.rank, standing.score) == (True, 2, 100)
        assert standing.nemesis is not None
        assert (standing.nemesis.participant_id, standing.nemesis.score) == (second, 200)
        await dispatch(services)  # ContestChanged: the board is rebuilt in the new style
