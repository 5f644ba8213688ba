"""Contests and leaderboards through GraphQL over HTTP: roles, visibility, bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import select

from api.auth import issue_token
from infra.clock import OffsetClock
from infra.db import Database
from leaderboards import repository
from leaderboards.models import Contest, VisibilityMode
from leaderboards.recurrence import parse_recurrence, periods_between
from partners.roles import Role
from schema.context import Services
from tests.factories import Tenant, approve_sale, create_contest, dispatch, gid
from tests.leaderboards.scenarios import BOARD
from tests.support import GQL, error_codes, eventually

CREATE = """
mutation($input: ContestCreateInput!) {
  contestCreate(input: $input) {
    contest { id name status version rankingStyle visibility { mode topN anonymised } }
    userErrors { field code message }
  }
}"""


MINE = """
query($id: ID!) {
  myStanding(contestId: $id) {
    rank score gapToNext percentile tiedWith tieRule
    participant { id name isYou }
    nemesis { rank score participant { id name } }
  }
}"""

EXPLAIN = """
query($id: ID!, $p: ID) {
  explainStanding(contestId: $id, participantId: $p) {
    tieRule standing { rank score } credits { eventType points description }
  }
}"""


async def contest_count(db: Database) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(Contest)) or 0)


def create_input(clock: OffsetClock, **extra: Any) -> dict[str, Any]:
    now = clock.now()
    return {
        "name": "Spring sprint",
        "startsAt": (now - timedelta(hours=1)).isoformat(),
        "endsAt": (now + timedelta(days=7)).isoformat(),
        **extra,
    }


async def test_only_vendor_admins_create_contests(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    variables = {"input": create_input(clock)}
    assert error_codes(await gql(CREATE, variables)) == ["UNAUTHENTICATED"]
    for role in (Role.CHANNEL_MANAGER, Role.FINANCE, Role.PARTNER_ADMIN, Role.PARTNER_REP):
        payload = await gql(CREATE, variables, as_user=tenant.user(role))
        assert error_codes(payload) == ["FORBIDDEN"], role
    assert await contest_count(db) == 0
    data = await gql.data(CREATE, variables, as_user=tenant.user(Role.VENDOR_ADMIN))
    created = data["contestCreate"]
    assert created["userErrors"] == []
    assert created["contest"]["status"] == "DRAFT"
    assert created["contest"]["version"] == 1


async def test_bad_contest_input_is_refused_and_changes_nothing(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    now = clock.now()
    admin = tenant.user(Role.VENDOR_ADMIN)
    cases = {
        "INVALID_WINDOW": create_input(clock, endsAt=(now - timedelta(days=1)).isoformat()),
        "INVALID_RECURRENCE": create_input(clock, recurrence="FREQ=FORTNIGHTLY"),
        "OVERLAPPING_PRIZES": create_input(
            clock,
            prizes=[
                {"fromRank": 1, "toRank": 3, "prize": "Trip"},
                {"fromRank": 3, "toRank": 5, "prize": "Mug"},
            ],
        ),
        "INVALID_TIME_ZONE": create_input(clock, timeZone="Mars/Olympus"),
        "REQUIRED": create_input(clock, name="  "),
    }
    for code, values in cases.items():
        data = await gql.data(CREATE, {"input": values}, as_user=admin)
        assert code in [e["code"] for e in data["contestCreate"]["userErrors"]], code
        assert data["contestCreate"]["contest"] is None
    empty = create_input(clock, endsAt=create_input(clock)["startsAt"])
    data = await gql.data(CREATE, {"input": empty}, as_user=admin)
    assert [e["code"] for e in data["contestCreate"]["userErrors"]] == ["INVALID_WINDOW"]
    assert await contest_count(db) == 0


async def test_partners_see_published_contests_they_are_eligible_for(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, other_tenant: Tenant
) -> None:
    open_contest = await create_contest(db, clock, tenant, name="Open")
    await create_contest(db, clock, tenant, name="Draft", publish=False)
    await create_contest(
        db, clock, tenant, name="Only partner 1",
        eligible_partner_ids=[str(tenant.partners[1].id)],
    )  # fmt: skip
    await create_contest(db, clock, tenant, name="Gold only", eligible_tiers=["GOLD"])
    await create_contest(db, clock, other_tenant, name="Elsewhere")
    query = "{ contests { totalCount edges { node { name } } } }"

    async def names(role: Role, index: int = 0) -> list[str]:
        data = await gql.data(query, as_user=tenant.user(role, index))
        return sorted(e["node"]["name"] for e in data["contests"]["edges"])

    assert await names(Role.VENDOR_ADMIN) == ["Draft", "Gold only", "Only partner 1", "Open"]
    assert await names(Role.PARTNER_REP, 0) == ["Open"]
    assert await names(Role.PARTNER_ADMIN, 1) == ["Only partner 1", "Open"]
    got = await gql.data(
        "query($id: ID!) { contest(id: $id) { name } }", {"id": gid(open_contest)},
        as_user=other_tenant.user(Role.VENDOR_ADMIN),
    )  # fmt: skip
    assert got == {"contest": None}


async def test_unknown_and_invisible_contests_answer_alike(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, other_tenant: Tenant
) -> None:
    hidden = await create_contest(
        db, clock, tenant, eligible_partner_ids=[str(tenant.partners[1].id)]
    )
    draft = await create_contest(db, clock, tenant, publish=False)
    rep0 = tenant.user(Role.PARTNER_REP, 0)
    unknown = gid("Contest", hidden.id).replace("A", "B", 1)
    answers = []
    for contest_id, user in (
        (gid(hidden), rep0),
        (gid(draft), rep0),
        (gid(hidden), other_tenant.user(Role.VENDOR_ADMIN)),
        (unknown, rep0),
        ("not-an-id", rep0),
    ):
        for query in (BOARD, MINE, EXPLAIN):
            payload = await gql(query, {"id": contest_id}, as_user=user)
            answers.append(
                (payload["data"], [(e["message"], e["extensions"]) for e in payload["errors"]])
            )
    assert all(a == answers[0] or a[1] == answers[0][1] for a in answers)
    assert {e[1][0][1]["code"] for e in answers} == {"NOT_FOUND"}


async def test_leaderboard_standing_and_explanation(
    gql: GQL, services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    contest = await create_contest(db, clock, tenant)
    await approve_sale(db, clock, tenant, partner=0, amount=500_00)
    await approve_sale(db, clock, tenant, partner=1, amount=200_00)
    await approve_sale(db, clock, tenant, partner=1, amount=100_00)
    await dispatch(services)
    admin = tenant.user(Role.VENDOR_ADMIN)
    board = (await gql.data(BOARD, {"id": gid(contest)}, as_user=admin))["leaderboard"]
    assert board["totalCount"] == 2
    assert board["status"] == "LIVE"
    rows = [e["node"] for e in board["edges"]]
    assert [(r["rank"], r["score"], r["gapToAbove"]) for r in rows] == [
        (1, 500_00, None),
        (2, 300_00, 200_00),
    ]
    assert rows[0]["participant"]["name"] == tenant.partners[0].name
    page = (await gql.data(BOARD, {"id": gid(contest), "first": 1}, as_user=admin))["leaderboard"]
    assert page["pageInfo"]["hasNextPage"]
    rest = await gql.data(
        BOARD,
        {"id": gid(contest), "first": 1, "after": page["pageInfo"]["endCursor"]},
        as_user=admin,
    )  # fmt: skip
    assert [e["node"]["rank"] for e in rest["leaderboard"]["edges"]] == [2]

    rep1 = tenant.user(Role.PARTNER_REP, 1)
    mine = (await gql.data(MINE, {"id": gid(contest)}, as_user=rep1))["myStanding"]
    assert (mine["rank"], mine["score"], mine["gapToNext"], mine["percentile"]) == (
        2,
        300_00,
        200_00,
        50.0,
    )
    assert mine["participant"]["isYou"]
    assert mine["nemesis"]["rank"] == 1
    assert (await gql.data(MINE, {"id": gid(contest)}, as_user=admin))["myStanding"] is None

    explained = (await gql.data(EXPLAIN, {"id": gid(contest)}, as_user=rep1))["explainStanding"]
    assert [c["points"] for c in explained["credits"]] == [200_00, 100_00]
    assert explained["tieRule"] == "No tie: ranked by score."
    # A partner may not explain another participant's standing: answered as not found.
    other = gid("Partner", tenant.partners[0].id)
    payload = await gql(EXPLAIN, {"id": gid(contest), "p": other}, as_user=rep1)
    assert error_codes(payload) == ["NOT_FOUND"]
    vendor_view = await gql.data(EXPLAIN, {"id": gid(contest), "p": other}, as_user=admin)
    assert vendor_view["explainStanding"]["standing"]["score"] == 500_00

    too_many = await gql(BOARD, {"id": gid(contest), "first": 101}, as_user=admin)
    assert error_codes(too_many) == ["PAGE_SIZE_TOO_LARGE"]


async def test_top_n_and_anonymised_boards_for_partners(
    gql: GQL, services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    contest = await create_contest(
        db, clock, tenant, visibility=VisibilityMode.TOP_N, visible_top_n=1, anonymise=True
    )
    await approve_sale(db, clock, tenant, partner=0, amount=500_00)
    await approve_sale(db, clock, tenant, partner=1, amount=100_00)
    await dispatch(services)
    secret = tenant.partners[0]
    for role in (Role.PARTNER_ADMIN, Role.PARTNER_REP):
        user = tenant.user(role, 1)
        board = (await gql.data(BOARD, {"id": gid(contest)}, as_user=user))["leaderboard"]
        assert board["totalCount"] == 1
        rows = [e["node"] for e in board["edges"]]
        assert rows == [{
            "rank": 1, "score": 500_00, "gapToAbove": None,
            "participant": {"id": None, "name": "Participant at rank 1", "isYou": False},
        }]  # fmt: skip
        mine = (await gql.data(MINE, {"id": gid(contest)}, as_user=user))["myStanding"]
        assert mine["participant"]["name"] == tenant.partners[1].name
        assert mine["nemesis"]["participant"] == {"id": None, "name": "Participant at rank 1"}
        for query in (BOARD, MINE):
            text = str(await gql(query, {"id": gid(contest)}, as_user=user))
            assert secret.name not in text
            assert str(secret.id) not in text
            assert gid("Partner", secret.id) not in text
    admin = tenant.user(Role.VENDOR_ADMIN)
    board = (await gql.data(BOARD, {"id": gid(contest)}, as_user=admin))["leaderboard"]
    assert [e["node"]["participant"]["name"] for e in board["edges"]] == [
        secret.name,
        tenant.partners[1].name,
    ]


UPDATE = """
mutation($input: ContestUpdateInput!) {
  contestUpdate(input: $input) {
    contest { version metric }
    userErrors { field code }
  }
}"""


async def test_changing_a_live_contest_is_versioned_audited_and_reranks(
    gql: GQL, services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    contest = await create_contest(db, clock, tenant)
    await approve_sale(db, clock, tenant, partner=0, amount=900_00, units=1)
    await approve_sale(db, clock, tenant, partner=1, amount=100_00, units=5)
    await dispatch(services)
    admin = tenant.user(Role.VENDOR_ADMIN)
    data = await gql.data(UPDATE, {"input": {"id": gid(contest), "metric": "UNITS"}}, as_user=admin)
    assert data["contestUpdate"] == {"contest": {"version": 2, "metric": "UNITS"}, "userErrors": []}
    await dispatch(services)
    board = (await gql.data(BOARD, {"id": gid(contest)}, as_user=admin))["leaderboard"]
    assert [(e["node"]["participant"]["name"], e["node"]["score"]) for e in board["edges"]] == [
        (tenant.partners[1].name, 5),
        (tenant.partners[0].name, 1),
    ]
    revisions = await gql.data(
        "query($id: ID!) { contest(id: $id) { revisions { version liveAtChange changes } } }",
        {"id": gid(contest)}, as_user=admin,
    )  # fmt: skip
    revs = revisions["contest"]["revisions"]
    assert [r["version"] for r in revs] == [1, 2]
    assert revs[1]["liveAtChange"]
    assert '"metric": ["REVENUE", "UNITS"]' in revs[1]["changes"]
    refused = await gql(UPDATE, {"input": {"id": gid(contest), "metric": "UNITS"}},
                        as_user=tenant.user(Role.PARTNER_ADMIN))  # fmt: skip
    assert error_codes(refused) == ["FORBIDDEN"]
    bad = await gql.data(
        UPDATE,
        {"input": {"id": gid(contest), "startsAt": clock.now().isoformat()}},
        as_user=admin,
    )
    assert bad["contestUpdate"]["userErrors"] == [{"field": "startsAt", "code": "NOT_EDITABLE"}]


async def test_moving_a_contests_start_past_its_end_names_the_start(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """The error named endsAt, a field the caller had not given."""
    contest = await create_contest(db, clock, tenant, starts_at=clock.now() + timedelta(days=1))
    query = UPDATE.replace("userErrors { field code }", "userErrors { field code message }")
    moved = {"id": gid(contest), "startsAt": (contest.ends_at + timedelta(days=1)).isoformat()}
    data = await gql.data(query, {"input": moved}, as_user=tenant.user(Role.VENDOR_ADMIN))
    assert data["contestUpdate"] == {"contest": None, "userErrors": [{
        "field": "startsAt", "code": "INVALID_WINDOW",
        "message": "The window must end after it starts.",
    }]}  # fmt: skip
    both = {**moved, "endsAt": contest.starts_at.isoformat()}
    data = await gql.data(query, {"input": both}, as_user=tenant.user(Role.VENDOR_ADMIN))
    assert [e["field"] for e in data["contestUpdate"]["userErrors"]] == ["endsAt"]
    async with db.session() as session:
        stored = await session.get(Contest, contest.id)
        assert stored is not None
        assert (stored.version, stored.starts_at) == (contest.version, contest.starts_at)


async def test_finished_contests_serve_frozen_standings(
    gql: GQL, services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    contest = await create_contest(db, clock, tenant, ends_at=clock.now() + timedelta(hours=1))
    await approve_sale(db, clock, tenant, partner=1, amount=100_00)
    await dispatch(services)
    clock.advance(timedelta(hours=2))
    # PyJWT checks `iat` against the wall clock, so the token is issued at the real time and
    # lives long enough for the moved clock.
    token = issue_token(
        gql.settings.jwt, tenant.user(Role.VENDOR_ADMIN), ttl=timedelta(hours=5),
        now=datetime.now(UTC),
    )  # fmt: skip

    async def board_now() -> dict[str, Any]:
        payload = await gql(BOARD, {"id": gid(contest)}, token=token)
        assert "errors" not in payload, payload
        result: dict[str, Any] = payload["data"]["leaderboard"]
        return result

    # FINISHED at once; frozen as soon as the closer has run (reads never freeze anything).
    assert (await board_now())["status"] == "FINISHED"

    async def frozen() -> bool:
        return bool((await board_now())["frozen"])

    await eventually(frozen)
    board = await board_now()
    assert (board["frozen"], board["status"]) == (True, "FINISHED")
    async for key in services.redis.scan_iter(match=services.keys("*")):
        await services.redis.delete(key)
    again = await board_now()
    assert again["edges"] == board["edges"]
    assert again["frozen"]
    late = await approve_sale(db, clock, tenant, partner=0, amount=999_00)
    await dispatch(services)
    del late
    assert await board_now() == board


@pytest.mark.slow
async def test_periods_and_contests_close_on_time_with_nobody_reading(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    now = clock.now()
    contest = await create_contest(
        db, clock, tenant, recurrence="FREQ=DAILY", starts_at=now - timedelta(days=2),
        ends_at=now + timedelta(hours=1),
    )  # fmt: skip
    await approve_sale(db, clock, tenant, partner=0, amount=100_00)
    await dispatch(services)
    periods = periods_between(
        parse_recurrence(contest.recurrence), "UTC", (contest.starts_at, contest.ends_at)
    )

    def ended() -> set[str]:
        return {p.key for p in periods if p.ends_at <= clock.now()}

    async def frozen_keys() -> set[str]:
        async with db.session() as session:
            return set(await repository.frozen_periods(session, contest.id))

    async def closed_so_far() -> bool:
        return await frozen_keys() == ended()

    await eventually(closed_so_far)  # the days that ended before now
    assert ended()
    clock.advance(timedelta(hours=2))  # the contest ends: no read, no event, no watcher

    async def finished() -> bool:
        async with db.session() as session:
            row = await session.get(Contest, contest.id)
            return row is not None and row.frozen_at is not None

    await eventually(finished)
    assert await frozen_keys() == {p.key for p in periods}
