"""Archiving a group (or ending the pilot whose arm it is) ends its timed windows too: a
rule's promotion window stops paying the group's programs and the partner is no longer
among its members, nor told it is."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from incentives.actions import Action, ActionKind
from incentives.models import Period, RuleFiring, RuleRecommendation
from infra.clock import OffsetClock
from infra.db import Database
from partners import groups
from partners.group_models import PartnerGroupMembership
from partners.roles import Role
from schema.context import Services
from tests.earnings import scenarios as es
from tests.factories import Tenant, gid
from tests.incentives.rules import active_rule, daily
from tests.incentives.scenarios import GROWTH, T0, settle, shop
from tests.incentives.test_actions import ENTRIES, nodes
from tests.support import GQL

MEMBERS = """query($id: ID!, $at: DateTime) { partnerGroup(id: $id) {
  members(at: $at) { edges { node { name } } } } }"""
DELETE = """mutation($input: PartnerGroupDeleteInput!) { partnerGroupDelete(input: $input) {
  partnerGroup { archivedAt } userErrors { code } } }"""


async def test_archiving_a_group_ends_the_windows_a_rule_opened_in_it(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    s = await shop(db, clock, tenant, services)
    await active_rule(db, clock, s, condition=GROWTH, period=Period.MONTH, actions=[
        Action(ActionKind.GROUP_WINDOW, days=30, group_id=s.boost_group_id)
    ])  # fmt: skip
    assert await daily(db, clock) == 1
    clock.advance(timedelta(hours=1))
    inside = await gql.data(MEMBERS, {"id": s.gid("group"), "at": None}, as_user=s.author)
    assert len(inside["partnerGroup"]["members"]["edges"]) == 1
    archived = await gql.data(DELETE, {"input": {"id": s.gid("group"), "reason": "promo over"}},
                              as_user=s.author)  # fmt: skip
    assert archived["partnerGroupDelete"]["userErrors"] == []
    now = clock.now()
    async with db.session() as session:
        [window] = list(await session.exec(select(PartnerGroupMembership)))
        assert (window.left_at, window.left_reason) == (now, "promo over")
        assert (
            await groups.groups_of(session, tenant.vendor.id, tenant.partners[0].id, now) == set()
        )
    members = await gql.data(MEMBERS, {"id": s.gid("group"), "at": None}, as_user=s.author)
    assert members["partnerGroup"]["members"]["edges"] == []
    clock.freeze(T0 + timedelta(days=1))
    await es.sale(db, clock, tenant, 100_00, partner_index=0)
    await settle(services)
    partner = tenant.user(Role.PARTNER_ADMIN, 0)
    entries = nodes(await gql.data(ENTRIES, {"kind": "COMMISSION"}, as_user=partner),
                    "earningEntries")  # fmt: skip
    paid = sorted((e["inputs"]["line_amount_minor"], e["amount"]["amountMinor"]) for e in entries)
    # Partner Rewards only: no Boost bonus after the group was archived.
    assert paid == [(100_00, 8_00), (1_000_00, 80_00), (1_240_00, 99_20)]


DRY_RUN = """query($v: ID!) { incentiveRuleDryRun(versionId: $v) {
  firing estimatedCost { amountMinor } partners { actions { kind skipped } } } }"""


async def test_a_rule_whose_group_was_archived_still_fires_its_other_actions(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    """The group was fine when the rule was approved. Archived since, its window is skipped
    with the reason, and the recommendation still reaches the partner: the vendor's whole
    daily run failed on it before (NOT_FOUND from the window), every rule with it."""
    s = await shop(db, clock, tenant, services)
    rule = await active_rule(db, clock, s, condition=GROWTH, period=Period.MONTH, actions=[
        Action(ActionKind.GROUP_WINDOW, days=30, group_id=s.boost_group_id),
        Action(ActionKind.RECOMMEND, days=7, title="Keep it up",
               text="Your growth qualifies you for more."),
    ])  # fmt: skip
    archived = await gql.data(DELETE, {"input": {"id": s.gid("group"), "reason": "promo over"}},
                              as_user=s.author)  # fmt: skip
    assert archived["partnerGroupDelete"]["userErrors"] == []
    version = gid("IncentiveRuleVersion", rule.active_version_id)
    dry = (await gql.data(DRY_RUN, {"v": version}, as_user=s.author))["incentiveRuleDryRun"]
    assert dry["firing"] == 1
    assert dry["partners"][0]["actions"] == [
        {"kind": "GROUP_WINDOW", "skipped": "GROUP_ARCHIVED"},
        {"kind": "RECOMMEND", "skipped": None},
    ]
    assert await daily(db, clock) == 1
    async with db.session() as session:
        [firing] = list(await session.exec(select(RuleFiring)))
        assert [(o["kind"], o.get("skipped"), o["estimated_cost_minor"]) for o in firing.outcomes] \
            == [("GROUP_WINDOW", "GROUP_ARCHIVED", 0), ("RECOMMEND", None, 0)]  # fmt: skip
        assert list(await session.exec(select(PartnerGroupMembership))) == []
        [recommended] = list(await session.exec(select(RuleRecommendation)))
        assert recommended.partner_id == tenant.partners[0].id


async def test_a_window_ended_by_archiving_its_group_is_not_explained_as_running(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    """Archived two days into a 30-day window, the group no longer has the partner nor pays
    it: the explanation tells the window in the past tense, with when it ended, as it tells
    what a rule change ended (before: "you are in Boost until …")."""
    s = await shop(db, clock, tenant, services)
    await active_rule(db, clock, s, condition="revenue_30d >= 100000", actions=[
        Action(ActionKind.GROUP_WINDOW, days=30, group_id=s.boost_group_id)
    ])  # fmt: skip
    await settle(services)
    await daily(db, clock)
    clock.advance(timedelta(days=2))
    archived_on = clock.now()
    await es.tx(db, lambda session: groups.archive_group(
        session, tenant.principal(Role.VENDOR_ADMIN), clock, group_id=s.boost_group_id,
        reason="promotion over",
    ))  # fmt: skip
    await settle(services)
    data = await gql.data(
        "{ incentiveExplanations { text } }", as_user=tenant.user(Role.PARTNER_ADMIN, 0)
    )
    [text] = [e["text"] for e in data["incentiveExplanations"]]
    assert "you are in Boost until" not in text, text
    assert "you were in Boost" in text, text
    assert text.endswith(f" Boost ended on {archived_on.day} {archived_on:%B %Y}."), text
