"""Contest eligibility by partner group (issue 12, item 7/8's optional part): a sale counts
when its partner was in one of the contest's groups at the sale's instant; partner users see
the contest while their partner is a member; the group ids are vendor-only."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from infra.clock import OffsetClock
from infra.db import Database
from leaderboards.models import Contest
from leaderboards.service import rescore
from partners import groups
from partners.group_models import MemberMode
from partners.roles import Role
from schema.context import Services
from tests.factories import Tenant, approve_sale, dispatch, gid
from tests.leaderboards.test_scoring import board
from tests.support import GQL

CREATE = """mutation($input: ContestCreateInput!) { contestCreate(input: $input) {
  contest { id eligibility { groupIds } } userErrors { code field } } }"""


async def test_a_group_contest_counts_members_at_the_sale_instant(
    gql: GQL, services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    admin = tenant.principal(Role.VENDOR_ADMIN)
    async with db.transaction() as session:
        group = await groups.create_group(session, admin, clock, name="Pilot")
        await groups.set_members(
            session, admin, clock, group_id=group.id, partner_ids=[tenant.partners[0].id],
            mode=MemberMode.INCLUDE,
        )  # fmt: skip
    now = clock.now()
    values = {
        "name": "Pilot push", "startsAt": (now - timedelta(hours=1)).isoformat(),
        "endsAt": (now + timedelta(days=30)).isoformat(),
        "eligibility": {"groupIds": [gid("PartnerGroup", group.id)]},
    }  # fmt: skip
    data = await gql.data(CREATE, {"input": values}, as_user=tenant.user(Role.VENDOR_ADMIN))
    created = data["contestCreate"]
    assert created["userErrors"] == []
    assert created["contest"]["eligibility"]["groupIds"] == [gid("PartnerGroup", group.id)]
    contest_id = created["contest"]["id"]
    await gql.data(
        "mutation($id: ID!) { contestPublish(input: {id: $id}) { userErrors { code } } }",
        {"id": contest_id}, as_user=tenant.user(Role.VENDOR_ADMIN),
    )  # fmt: skip
    async with db.session() as session:
        contest = (await session.exec(select(Contest).where(Contest.name == "Pilot push"))).one()

    await approve_sale(db, clock, tenant, partner=0, amount=300_00)
    await approve_sale(db, clock, tenant, partner=1, amount=500_00)
    clock.advance(timedelta(minutes=5))
    async with db.transaction() as session:  # partner 0 leaves: its later sale does not count
        await groups.set_members(
            session, admin, clock, group_id=group.id, partner_ids=[tenant.partners[0].id],
            mode=MemberMode.EXCLUDE,
        )  # fmt: skip
    clock.advance(timedelta(minutes=5))
    await approve_sale(db, clock, tenant, partner=0, amount=100_00)
    await dispatch(services)
    assert await board(services, contest) == [(str(tenant.partners[0].id), 1, 300_00)]
    async with db.transaction() as session:  # rescoring reads membership at each sale too
        assert await rescore(session, clock, await session.get_one(Contest, contest.id)) == 1
    await dispatch(services)
    assert await board(services, contest) == [(str(tenant.partners[0].id), 1, 300_00)]

    query = "query($id: ID!) { contest(id: $id) { name eligibility { groupIds } } }"
    seen = await gql(query, {"id": contest_id}, as_user=tenant.user(Role.PARTNER_ADMIN, 1))
    assert seen["data"] == {"contest": None}  # never a member
    # Partner 0 left the group: it no longer sees the contest either.
    seen = await gql(query, {"id": contest_id}, as_user=tenant.user(Role.PARTNER_ADMIN, 0))
    assert seen["data"] == {"contest": None}
    async with db.transaction() as session:
        await groups.set_members(
            session, admin, clock, group_id=group.id, partner_ids=[tenant.partners[0].id],
            mode=MemberMode.INCLUDE,
        )  # fmt: skip
    seen = await gql(query, {"id": contest_id}, as_user=tenant.user(Role.PARTNER_ADMIN, 0))
    assert seen["data"]["contest"] == {"name": "Pilot push", "eligibility": {"groupIds": None}}


async def test_an_unknown_or_foreign_group_is_refused(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, other_tenant: Tenant
) -> None:
    async with db.transaction() as session:
        theirs = await groups.create_group(
            session, other_tenant.principal(Role.VENDOR_ADMIN), clock, name="Theirs"
        )
    now = clock.now()
    values = {
        "name": "Push", "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(days=3)).isoformat(),
        "eligibility": {"groupIds": [gid("PartnerGroup", theirs.id)]},
    }  # fmt: skip
    data = await gql.data(CREATE, {"input": values}, as_user=tenant.user(Role.VENDOR_ADMIN))
    assert data["contestCreate"]["userErrors"] == [
        {"code": "NOT_FOUND", "field": "eligibility.groupIds"}
    ]


async def test_a_partner_taken_out_of_the_group_stops_reading_the_board_at_once(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    group = await gql.data(
        """mutation($input: PartnerGroupCreateInput!) { partnerGroupCreate(input: $input) {
             partnerGroup { id } } }""",
        {"input": {"name": "Pilot"}}, as_user=admin,
    )  # fmt: skip
    group_id = group["partnerGroupCreate"]["partnerGroup"]["id"]
    members = {"id": group_id, "partnerIds": [gid(tenant.partners[0])]}
    change = """mutation($input: PartnerGroupMembersInput!) { partnerGroupMembers%s(input: $input) {
      userErrors { code } } }"""
    await gql.data(change % "Add", {"input": members}, as_user=admin)
    now = clock.now()
    values = {
        "name": "Pilot push", "startsAt": (now - timedelta(hours=1)).isoformat(),
        "endsAt": (now + timedelta(days=30)).isoformat(), "publish": True,
        "eligibility": {"groupIds": [group_id]},
    }  # fmt: skip
    created = await gql.data(CREATE, {"input": values}, as_user=admin)
    board_query = "query($id: ID!) { leaderboard(contestId: $id) { totalCount } }"
    variables = {"id": created["contestCreate"]["contest"]["id"]}
    partner_admin = tenant.user(Role.PARTNER_ADMIN, 0)
    seen = await gql(board_query, variables, as_user=partner_admin)
    assert seen == {"data": {"leaderboard": {"totalCount": 0}}}
    # Out of the group: the next read answers as for a contest that does not exist (the
    # contest rows cached per partner follow group memberships, not only contests and
    # partners).
    await gql.data(change % "Remove", {"input": members}, as_user=admin)
    seen = await gql(board_query, variables, as_user=partner_admin)
    assert [e["extensions"]["code"] for e in seen["errors"]] == ["NOT_FOUND"]
