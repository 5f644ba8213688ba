"""Contest notifications: winners told their rank and prize when a contest finishes (the
rep in a rep contest, the partner's admins in a partner contest; nobody else), and a prize
within reach told once, near the end, naming no other participant."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from infra.clock import OffsetClock
from infra.db import Database
from leaderboards.closing import close_due
from leaderboards.models import ParticipantKind
from partners.models import User
from partners.roles import Role
from schema.context import Services
from tests.factories import Tenant, approve_sale, create_contest, dispatch
from tests.notifications.scenarios import INBOX
from tests.support import GQL

PRIZES: list[dict[str, Any]] = [
    {"from_rank": 1, "to_rank": 1, "prize": "Cash", "amount_minor": 500_00},
    {"from_rank": 2, "to_rank": 2, "prize": "Trophy"},
]


async def told(gql: GQL, user: User) -> list[dict[str, Any]]:
    data = await gql.data(INBOX, {}, as_user=user)
    return [e["node"] for e in data["notifications"]["edges"]]


async def test_partner_contest_winners_are_told_their_rank_and_prize(
    gql: GQL, services: Services, db: Database, clock: OffsetClock, tenant: Tenant,
    other_tenant: Tenant,
) -> None:  # fmt: skip
    contest = await create_contest(
        db, clock, tenant, ends_at=clock.now() + timedelta(hours=1), prizes=PRIZES
    )
    await approve_sale(db, clock, tenant, partner=0, amount=500)
    await approve_sale(db, clock, tenant, partner=1, amount=700)
    await dispatch(services)
    clock.advance(timedelta(hours=1, seconds=1))
    assert await close_due(services.leaderboards, contest.id)
    await dispatch(services)
    [first] = await told(gql, tenant.user(Role.PARTNER_ADMIN, 1))
    assert first["kind"] == "contest_won"
    assert first["category"] == "CONTEST"
    assert first["title"] == "You won rank 1 in Q4 push"
    assert first["body"] == (
        "Q4 push has ended and you finished at rank 1: your prize is Cash ($500.00, paid once "
        "our finance team approves it). Congratulations!"
    )
    [second] = await told(gql, tenant.user(Role.PARTNER_ADMIN, 0))
    assert second["title"] == "You won rank 2 in Q4 push"
    assert "your prize is Trophy." in second["body"]
    for user in (
        tenant.user(Role.PARTNER_REP, 0), tenant.user(Role.VENDOR_ADMIN),
        other_tenant.user(Role.PARTNER_ADMIN, 0),
    ):  # fmt: skip
        assert await told(gql, user) == []


async def test_in_a_rep_contest_the_winning_rep_is_told(
    gql: GQL, services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    contest = await create_contest(
        db, clock, tenant, ends_at=clock.now() + timedelta(hours=1),
        participant_kind=ParticipantKind.REP, prizes=PRIZES[:1],
    )  # fmt: skip
    rep = tenant.user(Role.PARTNER_REP, 0)
    await approve_sale(db, clock, tenant, partner=0, amount=900, rep=rep.id)
    await dispatch(services)
    clock.advance(timedelta(hours=1, seconds=1))
    assert await close_due(services.leaderboards, contest.id)
    await dispatch(services)
    [won] = await told(gql, rep)
    assert won["title"] == "You won rank 1 in Q4 push"
    assert await told(gql, tenant.user(Role.PARTNER_ADMIN, 0)) == []


async def test_a_prize_within_reach_is_told_once_near_the_end(
    gql: GQL, services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    contest = await create_contest(
        db, clock, tenant, ends_at=clock.now() + timedelta(days=3), prizes=PRIZES[:1],
        anonymise=True,
    )  # fmt: skip
    await approve_sale(db, clock, tenant, partner=1, amount=700_00)
    await approve_sale(db, clock, tenant, partner=0, amount=650_00)  # 7 % behind
    await dispatch(services)
    await services.notifier.tick()  # three days left: too early
    chaser = tenant.user(Role.PARTNER_ADMIN, 0)
    assert await told(gql, chaser) == []
    clock.advance(timedelta(days=2, hours=1))  # 23 hours left
    await services.notifier.tick()
    await services.notifier.tick()
    [reach] = await told(gql, chaser)
    assert reach["kind"] == "prize_within_reach"
    assert reach["title"] == f"A prize is within reach in {contest.name}"
    assert reach["body"].startswith(
        f"You are at rank 2 in {contest.name}, $50.00 behind rank 1 (Cash)."
    )
    assert tenant.partners[1].name not in reach["body"]  # anonymised: nobody else named
    assert await told(gql, tenant.user(Role.PARTNER_ADMIN, 1)) == []  # the leader


async def test_a_distant_chaser_is_not_told(
    gql: GQL, services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    await create_contest(
        db, clock, tenant, ends_at=clock.now() + timedelta(hours=5), prizes=PRIZES[:1]
    )
    await approve_sale(db, clock, tenant, partner=1, amount=700_00)
    await approve_sale(db, clock, tenant, partner=0, amount=500_00)  # 29 % behind
    await dispatch(services)
    await services.notifier.tick()
    assert await told(gql, tenant.user(Role.PARTNER_ADMIN, 0)) == []
