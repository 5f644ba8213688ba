"""A contest or an incentive rule that names a pilot's treatment arm tells who is in the arm
(its eligibility and board, its target and firings): like the arm itself
(``partners.group_policy.MANAGED_GROUP_READERS``), only vendor admins and finance read it.
A channel manager gets the answer it would get about a contest or a rule that does not
exist, over every read (a contest, the list and its count, node, the board, the live
board, when the contest comes to name the arm while it watches); the treatment partners
read the contest the treatment is meant to reach, the control partners nothing."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import select
from starlette.applications import Starlette

from incentives import rules
from incentives.actions import Action, ActionKind
from incentives.daily import run_due
from incentives.models import IncentiveRuleVersion
from infra.clock import OffsetClock
from partners import service as partners_service
from partners.roles import Role
from pilots.models import Pilot
from schema.context import Services
from schema.relay import parse_global_id
from tests.earnings import scenarios as es
from tests.factories import Tenant, approve_sale, dispatch, gid, principal_of
from tests.leaderboards.test_live import LIVE, ended_with
from tests.next_actions.scenarios import QUERY as NEXT_ACTIONS
from tests.notifications.scenarios import INBOX
from tests.pilots import scenarios as ps
from tests.pilots.test_pilots_api import PROGRAM, create, pilot_uuid
from tests.support import GQL, live_server, ws_client

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
CREATE = """mutation($input: ContestCreateInput!) { contestCreate(input: $input) {
  contest { id } userErrors { code field } } }"""
UPDATE = """mutation($input: ContestUpdateInput!) { contestUpdate(input: $input) {
  contest { id } userErrors { code field } } }"""
# What any reader asks of one contest (partners: no eligibility ids, which are vendor-only).
READS = (
    "query($id: ID!) { contest(id: $id) { id name status } }",
    "query($id: ID!) { node(id: $id) { __typename id ... on Contest { name } } }",
    "query($id: ID!) { leaderboard(contestId: $id) { totalCount edges { node { rank } } } }",
)
LIST = "{ contests(first: 50) { totalCount edges { node { id name } } } }"
MISSING_CONTEST = gid("Contest", uuid.UUID(int=1))


async def _started_pilot(gql: GQL, services: Services, clock: OffsetClock) -> tuple[
    Tenant, dict[uuid.UUID, str], uuid.UUID
]:  # fmt: skip
    """Eight partners, a started pilot over them (four in each arm); the channel manager is
    assigned every partner (so only the arm keeps anything from it)."""
    db = services.db
    clock.freeze(T0)
    tenant = await ps.pilot_tenant(db, clock)
    group = gid("PartnerGroup", await ps.group_id(db, tenant, "Resellers"))
    made = await create(gql, tenant, ps.create_input(group, T0 + timedelta(days=30), seed="9"))
    pilot = made["pilot"]
    assert isinstance(pilot, dict)
    await gql.data(ps.START, {"input": {"id": pilot["id"]}}, as_user=tenant.user(Role.VENDOR_ADMIN))
    async with db.transaction() as session:
        stored = await session.get(Pilot, pilot_uuid(pilot["id"]))
        assert stored is not None
        for partner in tenant.partners[1:]:  # (the factory assigns it the first)
            await partners_service.assign_manager(
                session, clock, manager=tenant.user(Role.CHANNEL_MANAGER), partner=partner
            )
    return tenant, await ps.arms(db, pilot_uuid(pilot["id"])), stored.treatment_group_id


async def _contest(gql: GQL, tenant: Tenant, name: str, groups: list[str]) -> str:
    now = T0
    values = {
        "name": name, "startsAt": (now - timedelta(hours=1)).isoformat(),
        "endsAt": (now + timedelta(days=20)).isoformat(), "publish": True,
        "eligibility": {"groupIds": groups},
        "prizes": [{"fromRank": 1, "toRank": 1, "prize": "A trip to Lisbon"}],
    }  # fmt: skip
    data = await gql.data(CREATE, {"input": values}, as_user=tenant.user(Role.VENDOR_ADMIN))
    assert data["contestCreate"]["userErrors"] == [], data
    return str(data["contestCreate"]["contest"]["id"])


async def test_a_contest_on_the_treatment_arm_is_read_by_admins_finance_and_the_treatment_only(
    gql: GQL, services: Services, clock: OffsetClock, other_tenant: Tenant
) -> None:
    tenant, arms, treatment_id = await _started_pilot(gql, services, clock)
    treatment = gid("PartnerGroup", treatment_id)
    on_arm = await _contest(gql, tenant, "Treatment sprint", [treatment])
    everyone = await _contest(gql, tenant, "Open sprint", [])
    # Vendor admins and finance read it, its eligibility naming the arm, first (their reads
    # are cached per reader: a channel manager must not be served from them).
    for role in (Role.VENDOR_ADMIN, Role.FINANCE):
        user = tenant.user(role)
        seen = await gql.data(
            "query($id: ID!) { contest(id: $id) { name eligibility { groupIds } } }",
            {"id": on_arm}, as_user=user,
        )  # fmt: skip
        assert seen["contest"] == {"name": "Treatment sprint",
                                   "eligibility": {"groupIds": [treatment]}}, role  # fmt: skip
        for query in READS:
            assert "errors" not in await gql(query, {"id": on_arm}, as_user=user), (role, query)
        listed = await gql.data(LIST, as_user=user)
        assert listed["contests"]["totalCount"] == 2, role
    # The channel manager: as about a contest that does not exist, and not in the list.
    manager = tenant.user(Role.CHANNEL_MANAGER)
    for query in READS:
        about = await gql(query, {"id": on_arm}, as_user=manager)
        assert about == await gql(query, {"id": MISSING_CONTEST}, as_user=manager), (query, about)
    listed = await gql.data(LIST, as_user=manager)
    assert [e["node"]["id"] for e in listed["contests"]["edges"]] == [everyone]
    assert listed["contests"]["totalCount"] == 1
    assert treatment not in json.dumps(listed)
    assert "Treatment sprint" not in json.dumps(listed)
    # The other vendor: nothing.
    stranger = other_tenant.user(Role.VENDOR_ADMIN)
    for query in READS:
        about = await gql(query, {"id": on_arm}, as_user=stranger)
        assert about == await gql(query, {"id": MISSING_CONTEST}, as_user=stranger), query
    # Partners: the treatment reads the contest meant for it; control partners read nothing,
    # not in the list, not in its count.
    for index, partner in enumerate(tenant.partners):
        user = tenant.user(Role.PARTNER_ADMIN, index)
        listed = await gql.data(LIST, as_user=user)
        ids = [e["node"]["id"] for e in listed["contests"]["edges"]]
        if arms[partner.id] == "TREATMENT":
            assert sorted(ids) == sorted([on_arm, everyone])
            seen = await gql.data(READS[0], {"id": on_arm}, as_user=user)
            assert seen["contest"]["name"] == "Treatment sprint"
        else:
            assert ids == [everyone]
            assert listed["contests"]["totalCount"] == 1
            for query in READS:
                about = await gql(query, {"id": on_arm}, as_user=user)
                assert about == await gql(query, {"id": MISSING_CONTEST}, as_user=user), query
    # The second of two treatment partners selling is within reach of the prize: it is
    # told so in its next actions; its channel manager, reading them as the partner would,
    # is not (the contest would tell it the partner is in the arm).
    first, second = [i for i, p in enumerate(tenant.partners) if arms[p.id] == "TREATMENT"][:2]
    clock.advance(timedelta(minutes=1))
    await approve_sale(services.db, clock, tenant, partner=first, amount=1_000_00)
    await approve_sale(services.db, clock, tenant, partner=second, amount=900_00)
    while await dispatch(services):
        pass
    own = await gql.data(NEXT_ACTIONS, {}, as_user=tenant.user(Role.PARTNER_ADMIN, second))
    assert [a["kind"] for a in own["nextActions"]["actions"]].count("CONTEST_PRIZE_IN_REACH") == 2
    assert on_arm in json.dumps(own) or str(parse(on_arm)) in json.dumps(own)
    for_manager = await gql.data(
        NEXT_ACTIONS, {"partnerId": gid(tenant.partners[second])}, as_user=manager
    )
    told = json.dumps(for_manager)
    assert "CONTEST_PRIZE_IN_REACH" in told  # the open contest's
    assert "Treatment sprint" not in told
    assert str(parse(on_arm)) not in told
    # Opened to everyone: the manager reads it now, but its history does not name the arm
    # (vendor admins' does).
    opened = await gql.data(
        UPDATE, {"input": {"id": on_arm, "eligibility": {"groupIds": []}}},
        as_user=tenant.user(Role.VENDOR_ADMIN),
    )  # fmt: skip
    assert opened["contestUpdate"]["userErrors"] == []
    history = "query($id: ID!) { contest(id: $id) { revisions { version changes } } }"
    for user, names_arm in ((tenant.user(Role.VENDOR_ADMIN), True), (manager, False)):
        revisions = (await gql.data(history, {"id": on_arm}, as_user=user))["contest"]["revisions"]
        assert [r["version"] for r in revisions] == [1, 2], user.role
        told = json.dumps(revisions)
        assert (treatment_id.hex in told or str(treatment_id) in told) is names_arm, told


@pytest.mark.slow
async def test_a_channel_manager_watching_a_board_is_cut_off_when_it_comes_to_name_the_arm(
    app: Starlette, gql: GQL, services: Services, clock: OffsetClock
) -> None:
    tenant, _, treatment_id = await _started_pilot(gql, services, clock)
    treatment = gid("PartnerGroup", treatment_id)
    on_arm = await _contest(gql, tenant, "Treatment sprint", [treatment])
    watched = await _contest(gql, tenant, "Open sprint", [])
    admin, manager = tenant.user(Role.VENDOR_ADMIN), tenant.user(Role.CHANNEL_MANAGER)
    async with (
        live_server(app) as address,
        ws_client(address, gql.token(admin)) as admin_client,
        ws_client(address, gql.token(manager)) as manager_client,
    ):
        # The admin watches first (a read the manager's must not be served from).
        await admin_client.subscribe(LIVE, {"id": on_arm})
        assert (await admin_client.data())["leaderboardChanged"]["status"] == "LIVE"
        await manager_client.subscribe(LIVE, {"id": on_arm})
        assert await ended_with(manager_client) == ["NOT_FOUND"]
        await manager_client.subscribe(LIVE, {"id": MISSING_CONTEST})
        assert await ended_with(manager_client) == ["NOT_FOUND"]
        # Watching an open contest, which the admin then restricts to the arm.
        await admin_client.subscribe(LIVE, {"id": watched})
        await manager_client.subscribe(LIVE, {"id": watched})
        assert (await admin_client.data())["leaderboardChanged"]["status"] == "LIVE"
        assert (await manager_client.data())["leaderboardChanged"]["status"] == "LIVE"
        changed = await gql.data(
            UPDATE, {"input": {"id": watched, "eligibility": {"groupIds": [treatment]}}},
            as_user=admin,
        )  # fmt: skip
        assert changed["contestUpdate"]["userErrors"] == []
        await dispatch(services)
        # (A push of the board as it was may come first: the feed's own first pass.)
        message = await manager_client.receive()
        while message["payload"].get("data") is not None:
            assert message["payload"]["data"]["leaderboardChanged"]["version"] == 1, message
            message = await manager_client.receive()
        assert message["type"] == "next", message
        assert [e["extensions"]["code"] for e in message["payload"]["errors"]] == ["NOT_FOUND"]
        assert await manager_client.receive() == {"id": message["id"], "type": "complete"}


async def test_a_rule_on_the_treatment_arm_is_read_by_admins_and_finance_only(
    gql: GQL, services: Services, clock: OffsetClock
) -> None:
    """The rule's target is the arm and it fires for the treatment only: a channel manager
    reads neither the rule, nor its firings, nor a staff notice of them."""
    db = services.db
    clock.freeze(T0 - timedelta(days=3))
    tenant, arms, treatment_id = await _started_pilot(gql, services, clock)
    admin = tenant.user(Role.VENDOR_ADMIN)
    await gql.data(PROGRAM, {"input": {"name": "Partner Rewards", "currency": "USD",
                   "rules": {"baseRates": [{"rateBp": 800}]}}}, as_user=admin)  # fmt: skip
    for index in range(len(tenant.partners)):
        await es.sale(db, clock, tenant, 500_00, partner_index=index, rep=False)
    while await dispatch(services):
        pass

    async def make(session: Any) -> list[uuid.UUID]:
        approver = await partners_service.create_user(
            session, clock, vendor_id=tenant.vendor.id, role=Role.VENDOR_ADMIN,
            email="second@x.example", display_name="Second",
        )  # fmt: skip
        made = []
        for name, target in (("Arm nudge", treatment_id), ("Open nudge", None)):
            actions = [Action(ActionKind.NOTIFY_STAFF, message=f"{name} fired")]
            if target is not None:
                actions.append(Action(ActionKind.RECOMMEND, days=7, title="Bundle a care pack",
                                      text="Add a care pack to your next quote."))  # fmt: skip
            rule = await rules.create_rule(
                session, tenant.principal(Role.VENDOR_ADMIN), clock, name=name,
                condition="revenue_30d >= 0", target_group_id=target, actions=actions,
            )  # fmt: skip
            [version] = await session.exec(
                select(IncentiveRuleVersion.id).where(IncentiveRuleVersion.rule_id == rule.id)
            )
            await rules.approve(session, principal_of(approver), clock, version_id=version,
                                reason="pilot")  # fmt: skip
            made.append(rule.id)
        return made

    on_arm, open_rule = await es.tx(db, make)
    await run_due(db, clock)
    while await dispatch(services):
        pass
    treated = sorted(str(p) for p, arm in arms.items() if arm == "TREATMENT")
    rule_reads = (
        "query($id: ID!) { incentiveRule(id: $id) { id name targetGroupId } }",
        "query($id: ID!) { node(id: $id) { __typename id } }",
        "query($id: ID!) { ruleFirings(ruleId: $id, first: 50) { totalCount edges { node { "
        "id } } } }",
    )
    listing = "{ incentiveRules(first: 50) { totalCount edges { node { id name } } } }"
    missing = gid("IncentiveRule", uuid.UUID(int=1))
    firings = (
        "query($id: ID!) { ruleFirings(ruleId: $id, first: 50) { edges { node { partnerId } } } }"
    )
    for role in (Role.VENDOR_ADMIN, Role.FINANCE):
        user = tenant.user(role)
        read = await gql.data(rule_reads[0], {"id": gid("IncentiveRule", on_arm)}, as_user=user)
        assert read["incentiveRule"]["targetGroupId"] == gid("PartnerGroup", treatment_id)
        fired = await gql.data(firings, {"id": gid("IncentiveRule", on_arm)}, as_user=user)
        got = sorted(str(parse(e["node"]["partnerId"])) for e in fired["ruleFirings"]["edges"])
        assert got == treated, role
        listed = await gql.data(listing, as_user=user)
        assert listed["incentiveRules"]["totalCount"] == 2
    manager = tenant.user(Role.CHANNEL_MANAGER)
    for query in rule_reads:
        about = await gql(query, {"id": gid("IncentiveRule", on_arm)}, as_user=manager)
        assert about == await gql(query, {"id": missing}, as_user=manager), (query, about)
    listed = await gql.data(listing, as_user=manager)
    assert [e["node"]["name"] for e in listed["incentiveRules"]["edges"]] == ["Open nudge"]
    assert listed["incentiveRules"]["totalCount"] == 1
    every = await gql.data("{ ruleFirings(first: 50) { totalCount } }", as_user=manager)
    assert every["ruleFirings"]["totalCount"] == len(tenant.partners)  # the open rule's
    open_fired = await gql.data(firings, {"id": gid("IncentiveRule", open_rule)}, as_user=manager)
    assert len(open_fired["ruleFirings"]["edges"]) == len(tenant.partners)
    # The treatment partners read the arm rule's recommendation in their next actions; their
    # channel manager, reading those as the partner would, does not.
    treated_index = next(i for i, p in enumerate(tenant.partners) if arms[p.id] == "TREATMENT")
    own = await gql.data(NEXT_ACTIONS, {}, as_user=tenant.user(Role.PARTNER_ADMIN, treated_index))
    assert "Bundle a care pack" in json.dumps(own)
    for_manager = await gql.data(
        NEXT_ACTIONS, {"partnerId": gid(tenant.partners[treated_index])}, as_user=manager
    )
    assert "RECOMMENDATION" not in json.dumps(for_manager)
    # The staff notices: the admin is told of both rules' firings, the manager of the open
    # rule's only (a notice of the arm's would name its partners).
    for user, arm_notices in ((admin, len(treated)), (manager, 0)):
        inbox = await gql.data(INBOX, {}, as_user=user)
        told = json.dumps(inbox)
        assert told.count("Arm nudge fired") == arm_notices, user.role
        assert told.count("Open nudge fired") == len(tenant.partners), user.role


def parse(global_id: str) -> uuid.UUID:
    found = parse_global_id(global_id)
    assert found is not None
    return found
