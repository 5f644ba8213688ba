"""The score limits (infra.limits): numeric contest inputs beyond them are refused with a
code and change nothing; one event never scores past its bound; a total past the exact
range of a double is capped on the board (saturating), exactly and alike live and rebuilt."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import col, select

from deal_registration.events import SALE_APPROVED, Line, SaleApproved
from infra import limits
from infra.clock import OffsetClock
from infra.db import Database
from leaderboards.models import Contest, ContestCredit, Metric, RankingStyle, pack, unpack
from leaderboards.rebuild import rebuild
from leaderboards.scoring import BoardMode, apply_credit, credit_for
from partners.roles import Role
from schema.context import Services
from tests.factories import (
    Tenant,
    approve_sale,
    create_contest,
    dispatch,
    gid,
    reverse_sale,
)
from tests.leaderboards.test_api import CREATE, create_input
from tests.support import GQL

MAX = limits.MAX_SCORE

UPDATE = """
mutation($input: ContestUpdateInput!) {
  contestUpdate(input: $input) {
    contest { version }
    userErrors { field code }
  }
}"""

CONTEST = "query($id: ID!) { contest(id: $id) { version revisions { version } } }"


async def contest_count(db: Database) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(Contest)) or 0)


@pytest.mark.parametrize(
    "weights",
    [
        # 1001 points per major unit: a 10**12 sale alone was worth 10**16 > 2**53.
        {"revenuePerMajorUnit": limits.MAX_REVENUE_WEIGHT + 1},
        {"perUnit": limits.MAX_WEIGHT + 1},
        {"perClaim": 2**31 - 1},
        {"perWonDeal": limits.MAX_WEIGHT + 1, "perClaim": 1},
    ],
)
async def test_huge_weights_are_refused_too_large_and_nothing_changes(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, weights: dict[str, int]
) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    values = create_input(clock, metric="POINTS", weights=weights)
    data = await gql.data(CREATE, {"input": values}, as_user=admin)
    assert data["contestCreate"]["contest"] is None
    assert [(e["field"], e["code"]) for e in data["contestCreate"]["userErrors"]] == [
        ("weights", "TOO_LARGE")
    ]
    assert await contest_count(db) == 0

    contest = await create_contest(
        db, clock, tenant, metric=Metric.POINTS, weights={"per_claim": 5}
    )
    data = await gql.data(
        UPDATE, {"input": {"id": gid(contest), "weights": weights}}, as_user=admin
    )
    assert data["contestUpdate"]["contest"] is None
    assert data["contestUpdate"]["userErrors"] == [{"field": "weights", "code": "TOO_LARGE"}]
    after = await gql.data(CONTEST, {"id": gid(contest)}, as_user=admin)
    assert after["contest"] == {"version": 1, "revisions": [{"version": 1}]}
    async with db.session() as session:
        stored = await session.get(Contest, contest.id)
        assert stored is not None
        assert stored.weights == {"per_claim": 5}
    # At the bounds, taken.
    at_bounds = {
        "revenuePerMajorUnit": limits.MAX_REVENUE_WEIGHT, "perUnit": limits.MAX_WEIGHT,
        "perClaim": limits.MAX_WEIGHT, "perWonDeal": limits.MAX_WEIGHT,
    }  # fmt: skip
    data = await gql.data(
        UPDATE, {"input": {"id": gid(contest), "weights": at_bounds}}, as_user=admin
    )
    assert data["contestUpdate"] == {"contest": {"version": 2}, "userErrors": []}


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        # 2**53 parses as a Score, and is one past the exact range.
        ({"targets": [{"participantId": "P", "target": 2**53}]}, "targets"),
        (
            {
                "prizes": [
                    {
                        "fromRank": 1,
                        "toRank": 1,
                        "prize": "Cash",
                        "amount": {"amount": "10000000000.01", "currency": "USD"},
                    }
                ]
            },
            "prizes",
        ),  # fmt: skip
    ],
    ids=["target", "prize"],
)
async def test_other_numeric_contest_inputs_past_the_bounds_are_too_large(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, extra: dict[str, Any], field: str
) -> None:
    if "targets" in extra:
        extra["targets"][0]["participantId"] = gid(tenant.partners[0])
    admin = tenant.user(Role.VENDOR_ADMIN)
    data = await gql.data(CREATE, {"input": create_input(clock, **extra)}, as_user=admin)
    assert data["contestCreate"]["contest"] is None
    assert [(e["field"], e["code"]) for e in data["contestCreate"]["userErrors"]] == [
        (field, "TOO_LARGE")
    ]
    assert await contest_count(db) == 0


def _sale(amount: int, units: int) -> SaleApproved:
    return SaleApproved(
        claim_id=uuid.uuid4(), partner_id=uuid.uuid4(), rep_user_id=None, region="EMEA",
        currency="USD", amount_minor=amount,
        lines=[Line(sku="NW-ROUTER-X1", units=units, amount_minor=amount)],
        approved_at=datetime(2026, 1, 1, tzinfo=UTC),
    )  # fmt: skip


def test_one_event_is_worth_at_most_its_bound() -> None:
    sale = _sale(limits.MAX_SALE_AMOUNT_MINOR, limits.MAX_SERIALS_PER_CLAIM)
    at_bounds = Contest(
        vendor_id=uuid.uuid4(), name="c", starts_at=sale.approved_at, ends_at=sale.approved_at,
        metric=Metric.POINTS,
        weights={"revenue_per_major_unit": limits.MAX_REVENUE_WEIGHT,
                 "per_unit": limits.MAX_WEIGHT, "per_claim": limits.MAX_WEIGHT},
    )  # fmt: skip
    found = credit_for(at_bounds, SALE_APPROVED, sale, partner_tier="GOLD")
    assert found is not None
    assert found[1] == (
        limits.MAX_SALE_AMOUNT_MINOR * limits.MAX_REVENUE_WEIGHT // 100
        + limits.MAX_SERIALS_PER_CLAIM * limits.MAX_WEIGHT
        + limits.MAX_WEIGHT
    )
    assert found[1] <= limits.MAX_EVENT_SCORE
    # A contest saved before the bounds (weights up to 10**6 were taken): its event is cut
    # to the bound, not stored past the exact range.
    legacy = Contest(
        vendor_id=uuid.uuid4(), name="c", starts_at=sale.approved_at, ends_at=sale.approved_at,
        metric=Metric.POINTS, weights={"revenue_per_major_unit": 1_000_000},
    )  # fmt: skip
    found = credit_for(legacy, SALE_APPROVED, sale, partner_tier="GOLD")
    assert found is not None
    assert found[1] == limits.MAX_EVENT_SCORE


@pytest.mark.parametrize(
    "style", [RankingStyle.COMPETITION, RankingStyle.DENSE], ids=["plain", "rich"]
)
async def test_a_total_past_the_exact_range_is_capped_exactly_live_and_rebuilt(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant, style: RankingStyle
) -> None:
    contest = await create_contest(db, clock, tenant, ranking_style=style)
    await dispatch(services)  # the (empty) board is built
    boards = services.leaderboards.boards
    keys = boards.keys_of(contest.id)
    mode = BoardMode.of(contest)
    a, b, c = uuid.UUID(int=1), uuid.UUID(int=2), uuid.UUID(int=3)

    async def credit(who: uuid.UUID, delta: int) -> None:
        await apply_credit(
            boards.scripts, keys, mode, event_id=uuid.uuid4(), participant=who,
            period_key="all", delta=delta, tick=0, target=0,
        )  # fmt: skip

    async def board() -> list[tuple[uuid.UUID, int, int]]:
        page = await boards.page(contest, "all", 0, 10)
        return [(r.participant_id, r.rank, r.score) for r in page.rows]

    await credit(a, MAX - 1)
    await credit(b, MAX - 3)
    await credit(c, 7)
    assert await board() == [(a, 1, MAX - 1), (b, 2, MAX - 3), (c, 3, 7)]
    # Past the cap: both saturate and tie there (a double held 2**53 + 4 and 2**53 + 2
    # as different, inexact numbers that JSON clients read wrongly).
    await credit(a, 5)
    await credit(b, 5)
    third = 3 if style is RankingStyle.COMPETITION else 2
    assert await board() == [(b, 1, MAX), (a, 1, MAX), (c, third, 7)]
    # The exact total was kept: taking the excess back is exact again.
    await credit(a, -5)
    assert await board() == [(b, 1, MAX), (a, 2, MAX - 1), (c, 3, 7)]
    _, standing = await boards.standing(contest, "all", a)
    assert (standing.rank, standing.score) == (2, MAX - 1)


@pytest.mark.parametrize(
    "style", [RankingStyle.COMPETITION, RankingStyle.DENSE], ids=["plain", "rich"]
)
async def test_sales_summed_past_the_exact_range_rank_alike_live_and_rebuilt(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant, style: RankingStyle
) -> None:
    contest = await create_contest(db, clock, tenant, ranking_style=style)
    biggest = limits.MAX_EVENT_SCORE  # the most one event may be worth
    n = MAX // biggest  # this many stay within the exact range; one more passes it
    sales = [await approve_sale(db, clock, tenant, partner=0, amount=biggest) for _ in range(n)]
    await approve_sale(db, clock, tenant, partner=0, amount=biggest)
    await approve_sale(db, clock, tenant, partner=1, amount=3)
    await dispatch(services)
    boards = services.leaderboards.boards

    async def board() -> list[tuple[uuid.UUID, int, int]]:
        page = await boards.page(contest, "all", 0, 10)
        return [(r.participant_id, r.rank, r.score) for r in page.rows]

    p0, p1 = tenant.partners[0].id, tenant.partners[1].id
    assert await board() == [(p0, 1, MAX), (p1, 2, 3)]
    await rebuild(db, boards, clock, contest.id)
    assert await board() == [(p0, 1, MAX), (p1, 2, 3)]
    # A reversal brings the total back within the range: exact, live and rebuilt.
    await reverse_sale(db, clock, tenant, sales[0])
    await dispatch(services)
    assert await board() == [(p0, 1, n * biggest), (p1, 2, 3)]
    await rebuild(db, boards, clock, contest.id)
    assert await board() == [(p0, 1, n * biggest), (p1, 2, 3)]


async def test_a_contest_saved_before_the_bounds_keeps_its_values_through_other_edits(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """A weight above today's bound, or an eligible region with an invisible character, was
    accepted before those rules: the contest can still be renamed with them as they are;
    changing that setting itself must meet the rule (TOO_LARGE, INVALID_CHARACTERS)."""
    admin = tenant.user(Role.VENDOR_ADMIN)
    contest = await create_contest(
        db, clock, tenant, metric=Metric.POINTS, weights={"per_claim": 5}
    )
    old_weights = {"revenue_per_major_unit": limits.MAX_REVENUE_WEIGHT * 5, "per_claim": 5}
    async with db.transaction() as session:
        stored = await session.get(Contest, contest.id)
        assert stored is not None
        stored.weights = old_weights
        stored.eligible_regions = pack(["EMEA\u200b"])
        session.add(stored)

    async def update(**changes: Any) -> list[tuple[str, str]]:
        data = await gql.data(UPDATE, {"input": {"id": gid(contest), **changes}}, as_user=admin)
        return [(e["field"], e["code"]) for e in data["contestUpdate"]["userErrors"]]

    assert await update(name="Spring push, renamed") == []
    async with db.session() as session:
        kept = await session.get(Contest, contest.id)
        assert kept is not None
        assert (kept.name, kept.weights) == ("Spring push, renamed", old_weights)
        assert unpack(kept.eligible_regions) == ["EMEA\u200b"]
    assert await update(weights={"revenuePerMajorUnit": limits.MAX_REVENUE_WEIGHT + 1}) == [
        ("weights", "TOO_LARGE")
    ]
    assert await update(eligibility={"regions": ["NA\u200b"]}) == [
        ("eligibility.regions", "INVALID_CHARACTERS")
    ]
    assert await update(weights={"perClaim": 7}) == []


INT64_MAX = 2**63 - 1


@pytest.mark.parametrize(
    "style",
    [RankingStyle.COMPETITION, RankingStyle.DENSE, RankingStyle.FIRST_TO_REACH],
    ids=["plain", "rich", "first-to-reach"],
)
async def test_a_raw_total_past_64_bits_stays_exact_and_shows_at_the_cap(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant, style: RankingStyle
) -> None:
    """The raw total (the exact one beside a capped board value) was a HINCRBY: one credit
    taking it past 2**63 - 1 failed the script ("increment or decrement would overflow")
    after its event was marked seen (Redis does not undo a script's writes): the credit
    was lost and its retry a duplicate. About 77,000 of the largest events one participant
    may score (infra.limits.MAX_EVENT_SCORE) get there; here a few large deltas do."""
    contest = await create_contest(db, clock, tenant, ranking_style=style)
    await dispatch(services)  # the (empty) board is built
    boards = services.leaderboards.boards
    keys = boards.keys_of(contest.id)
    mode = BoardMode.of(contest)
    a, b = uuid.UUID(int=1), uuid.UUID(int=2)

    async def credit(who: uuid.UUID, delta: int) -> int:
        return await apply_credit(
            boards.scripts, keys, mode, event_id=uuid.uuid4(), participant=who,
            period_key="all", delta=delta, tick=0, target=0,
        )  # fmt: skip

    async def board() -> list[tuple[uuid.UUID, int]]:
        page = await boards.page(contest, "all", 0, 10)
        return [(r.participant_id, r.score) for r in page.rows]

    await credit(a, 2**62)
    await credit(a, 2**62 - 1)  # exactly the largest 64-bit integer
    await credit(b, 9)
    assert await board() == [(a, MAX), (b, 9)]
    before = await boards.version(contest.id)
    assert await credit(a, 1) == before + 1  # one past it: counted
    assert await credit(a, 2**62) == before + 2
    assert await board() == [(a, MAX), (b, 9)]
    # Exact all along: taking it all back but 7 leaves 7.
    await credit(a, -(INT64_MAX + 1 + 2**62 - 7))
    assert await board() == [(b, 9), (a, 7)]
    await credit(a, -10)
    assert await board() == [(b, 9), (a, -3)]
    _, standing = await boards.standing(contest, "all", a)
    assert (standing.rank, standing.score) == (2, -3)


async def test_a_ledger_total_past_64_bits_rebuilds_and_scores_on_exactly(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """A ledger whose total for a participant passes 2**63 - 1 (rows of a contest scored
    before the bounds of infra.limits, up to 10**16 points an event; or some 77,000 of
    today's largest): the rebuild's SQL sum failed on SQLite ("integer overflow"); on
    PostgreSQL it put the exact total in the raw hash, and the next credit's HINCRBY then
    failed on it ("hash value is not an integer")."""
    contest = await create_contest(db, clock, tenant)
    sales = [await approve_sale(db, clock, tenant, partner=0, amount=100) for _ in range(3)]
    await approve_sale(db, clock, tenant, partner=1, amount=5)
    await dispatch(services)
    async with db.transaction() as session:
        rows = (
            await session.exec(
                select(ContestCredit).where(col(ContestCredit.event_id).in_([s.id for s in sales]))
            )
        ).all()
        for row in rows:
            row.delta = 2**62  # written before the bounds
            session.add(row)
    boards = services.leaderboards.boards
    await rebuild(db, boards, clock, contest.id)
    p0, p1 = tenant.partners[0].id, tenant.partners[1].id

    async def board() -> list[tuple[uuid.UUID, int]]:
        page = await boards.page(contest, "all", 0, 10)
        return [(r.participant_id, r.score) for r in page.rows]

    assert await board() == [(p0, MAX), (p1, 5)]
    # Scored on the rebuilt board, and exact: with the three taken back, the new sale's.
    await approve_sale(db, clock, tenant, partner=0, amount=100)
    for sale in sales:
        await reverse_sale(db, clock, tenant, sale)  # takes back what its row credited
    await dispatch(services)
    assert await board() == [(p0, 100), (p1, 5)]
    await rebuild(db, boards, clock, contest.id)
    assert await board() == [(p0, 100), (p1, 5)]
