"""A rule's whole life through GraphQL (issue 13, "Done means"): draft -> dry run ->
approve (four eyes) -> fire -> explained to the partner -> rolled back -> the earlier
version in force again, and the partner told what ended."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import col, select

from earnings.models import EarningEntry, Program
from incentives.actions import Action, ActionKind
from infra.clock import OffsetClock
from infra.db import Database
from partners import groups
from partners.roles import Role
from schema.context import Services
from tests.earnings import scenarios as es
from tests.factories import Tenant, gid
from tests.incentives.rules import active_rule, daily
from tests.incentives.scenarios import GROWTH, T0, settle, shop
from tests.support import GQL

CREATE = """mutation($input: IncentiveRuleCreateInput!) { incentiveRuleCreate(input: $input) {
  rule { id name status versions { id number status } } userErrors { code field message } } }"""
DRAFT = """mutation($input: IncentiveRuleDraftInput!) { incentiveRuleDraft(input: $input) {
  version { id number status reads } userErrors { code field message } } }"""
APPROVE = """mutation($input: IncentiveRuleApproveInput!) { incentiveRuleApprove(input: $input) {
  rule { status activeVersion { number approvalReason } } userErrors { code field message } } }"""
ROLL_BACK = """mutation($input: IncentiveRuleRollBackInput!) {
  incentiveRuleRollBack(input: $input) {
    rule { status activeVersion { number } } userErrors { code field message } } }"""
DRY_RUN = """query($v: ID!, $day: Date) { incentiveRuleDryRun(versionId: $v, day: $day) {
  versionNumber day evaluated firing estimatedCost { amountMinor currency }
  partners { partnerId partnerName values { name value }
             actions { kind estimatedCost { amountMinor } } } } }"""
FIRINGS = """query($rule: ID) { ruleFirings(ruleId: $rule) { totalCount edges { node {
  versionNumber partnerId period trigger values { name value }
  outcomes { kind skipped estimatedCost { amountMinor } } explanation } } } }"""
EXPLAINED = "{ incentiveExplanations { text } ruleRecommendations { title text link } }"
MEMBERS = """{ partnerGroups { edges { node { name members { edges { node { id } } } } } } }"""
AUDIT = """{ auditLog(filter: {entityType: "incentive_rule"}) { edges { node {
  action reason } } } }"""


async def paid_by(db: Database, event_id: object) -> dict[str, int]:
    async with db.session() as session:
        rows = await session.exec(
            select(Program.name, EarningEntry.amount_minor)
            .join(Program, col(Program.id) == col(EarningEntry.program_id))
            .where(EarningEntry.source_event_id == event_id)
        )
        return dict(rows.all())


async def in_groups(gql: GQL, as_user: object) -> dict[str, list[str]]:
    """Each group's members now, as the vendor reads them."""
    data = await gql.data(MEMBERS, as_user=as_user)
    return {
        e["node"]["name"]: [m["node"]["id"] for m in e["node"]["members"]["edges"]]
        for e in data["partnerGroups"]["edges"]
    }


async def test_a_rule_from_draft_to_rollback(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    s = await shop(db, clock, tenant, services)
    partner = tenant.user(Role.PARTNER_ADMIN, 0)
    me = gid(tenant.partners[0])

    async def starter_group(session: object) -> object:
        return await groups.create_group(
            session,  # type: ignore[arg-type]
            tenant.principal(Role.VENDOR_ADMIN),
            clock,
            name="Starter",
        )

    starter = await es.tx(db, starter_group)  # a group no program pays extra in

    # Version 1: a mild promotion (the Starter group, a tip), approved.
    created = await gql.data(CREATE, {"input": {
        "name": "Growth boost", "condition": GROWTH, "period": "MONTH",
        "actions": [{"kind": "GROUP_WINDOW", "groupId": gid(starter), "days": 30},
                    {"kind": "RECOMMEND", "days": 14, "title": "Sell again",
                     "text": "Your customers are buying."}],
    }}, as_user=s.author)  # fmt: skip
    rule = created["incentiveRuleCreate"]["rule"]
    assert created["incentiveRuleCreate"]["userErrors"] == []
    assert rule["status"] == "DRAFT"
    [v1] = rule["versions"]
    approved = await gql.data(APPROVE, {"input": {"versionId": v1["id"], "reason": "ok"}},
                              as_user=s.approver)  # fmt: skip
    assert approved["incentiveRuleApprove"]["rule"]["status"] == "ACTIVE"
    # Approval evaluates the rule at once: partner 0 grew, so it is in Starter now.
    await settle(services)
    assert (await in_groups(gql, s.author))["Starter"] == [me]
    v1_now = (
        "Your revenue grew 24 % week over week, so you are in Starter until 4 January 2027; "
        "we recommend: Sell again."
    )
    assert await gql.data(EXPLAINED, as_user=partner) == {
        "incentiveExplanations": [{"text": v1_now}],
        "ruleRecommendations": [
            {"title": "Sell again", "text": "Your customers are buying.", "link": None}
        ],
    }  # fmt: skip

    # Draft version 2: the growth promotion.
    drafted = await gql.data(DRAFT, {"input": {
        "ruleId": rule["id"], "condition": GROWTH, "period": "MONTH",
        "actions": [
            {"kind": "GROUP_WINDOW", "groupId": s.gid("group"), "days": 30},
            {"kind": "RECOMMEND", "days": 30, "title": "Keep growing",
             "text": "Register your next deals early.", "link": "/deals/new"},
            {"kind": "NOTIFY_STAFF", "message": "A partner grew fast."},
        ],
    }}, as_user=s.author)  # fmt: skip
    v2 = drafted["incentiveRuleDraft"]["version"]
    assert (v2["number"], v2["status"], v2["reads"]) == (2, "DRAFT", ["revenue_growth_wow"])

    # Dry run on today's signals: partner 0 would fire; Boost bonus pays 2 % on the
    # trailing 30 days' pace (2,240.00 USD) over 30 days: 44.80 USD. Nothing is written.
    run = (await gql.data(DRY_RUN, {"v": v2["id"]}, as_user=s.author))["incentiveRuleDryRun"]
    assert (run["versionNumber"], run["day"], run["evaluated"], run["firing"]) == (
        2, T0.date().isoformat(), 2, 1
    )  # fmt: skip
    assert run["estimatedCost"] == {"amountMinor": 44_80, "currency": "USD"}
    [would] = run["partners"]
    assert would["partnerId"] == gid(tenant.partners[0])
    assert {"name": "revenue_growth_wow", "value": "0.24"} in would["values"]
    assert [a["kind"] for a in would["actions"]] == ["GROUP_WINDOW", "RECOMMEND", "NOTIFY_STAFF"]
    # ... and on a past day (before the second sale) nobody would.
    past = await gql.data(DRY_RUN, {"v": v2["id"], "day": (T0 - timedelta(days=8)).date()
                                    .isoformat()}, as_user=s.author)  # fmt: skip
    assert past["incentiveRuleDryRun"]["firing"] == 0
    assert (await gql.data(FIRINGS, {"rule": rule["id"]}, as_user=s.author))["ruleFirings"][
        "totalCount"
    ] == 1  # version 1's firing only
    assert (await gql.data(EXPLAINED, as_user=partner))["incentiveExplanations"] == [
        {"text": v1_now}
    ]

    # Four eyes: the author may not approve its own draft; the second admin does.
    own = await gql.data(APPROVE, {"input": {"versionId": v2["id"], "reason": "mine"}},
                         as_user=s.author)  # fmt: skip
    assert [e["code"] for e in own["incentiveRuleApprove"]["userErrors"]] == ["SELF_APPROVAL"]
    ok = await gql.data(APPROVE, {"input": {"versionId": v2["id"], "reason": "Q4 push"}},
                        as_user=s.approver)  # fmt: skip
    assert ok["incentiveRuleApprove"]["rule"]["activeVersion"] == {
        "number": 2, "approvalReason": "Q4 push"
    }  # fmt: skip

    # Fire: approval evaluates version 2 at once (version 1's window and tip end); the daily
    # evaluation then writes nothing more.
    await settle(services)
    assert await daily(db, clock) == 2
    assert await daily(db, clock) == 2  # once a day
    firings = (await gql.data(FIRINGS, {"rule": rule["id"]}, as_user=s.author))["ruleFirings"]
    [firing] = [e["node"] for e in firings["edges"] if e["node"]["versionNumber"] == 2]
    assert (firing["versionNumber"], firing["partnerId"], firing["period"], firing["trigger"]) == (
        2, me, "2026-12", "ACTIVATION"
    )  # fmt: skip
    assert {"name": "revenue_growth_wow", "value": "0.24"} in firing["values"]
    assert [o["kind"] for o in firing["outcomes"]] == ["GROUP_WINDOW", "RECOMMEND", "NOTIFY_STAFF"]

    # Explained to the partner, in plain language; the other partner reads nothing.
    expected = (
        "Your revenue grew 24 % week over week, so you are in Boost until 4 January 2027: "
        "+2 points on every sale (Boost bonus); we recommend: Keep growing."
    )
    assert firing["explanation"] == expected
    # Version 1's firing now reads as ended, in the past tense: its tip is no longer current.
    v1_ended = (
        "Your revenue grew 24 % week over week, so you were in Starter; we recommended: Sell "
        "again. Starter ended and the recommendation was withdrawn on 5 December 2026 when "
        "the rule changed."
    )
    assert await gql.data(EXPLAINED, as_user=partner) == {
        "incentiveExplanations": [{"text": expected}, {"text": v1_ended}],
        "ruleRecommendations": [
            {"title": "Keep growing", "text": "Register your next deals early.",
             "link": "/deals/new"}
        ],
    }  # fmt: skip
    assert await gql.data(EXPLAINED, as_user=tenant.user(Role.PARTNER_ADMIN, 1)) == {
        "incentiveExplanations": [], "ruleRecommendations": []
    }  # fmt: skip
    # The group window pays: a sale now earns the Boost bonus on top.
    clock.freeze(T0 + timedelta(days=1))
    boosted = await es.sale(db, clock, tenant, 100_00, partner_index=0)
    await settle(services)
    assert await paid_by(db, boosted.id) == {"Partner Rewards": 8_00, "Boost bonus": 2_00}

    # Roll back to version 1: Boost ends now, its recommendation is withdrawn, and version 1
    # is in force again at once, in this period already: partner 0 is back in Starter with
    # version 1's tip.
    assert (await in_groups(gql, s.author)) == {"Boost": [me], "Starter": []}
    undo = {"id": rule["id"], "toVersion": 1, "reason": "Too generous"}
    back = await gql.data(ROLL_BACK, {"input": undo}, as_user=s.author)
    assert back["incentiveRuleRollBack"] == {
        "rule": {"status": "ACTIVE", "activeVersion": {"number": 1}}, "userErrors": []
    }  # fmt: skip
    await settle(services)
    assert (await in_groups(gql, s.author)) == {"Boost": [], "Starter": [me]}
    clock.freeze(T0 + timedelta(days=2))
    after = await es.sale(db, clock, tenant, 100_00, partner_index=0)
    await settle(services)
    assert await paid_by(db, after.id) == {"Partner Rewards": 8_00}
    explained = await gql.data(EXPLAINED, as_user=partner)
    assert explained["ruleRecommendations"] == [
        {"title": "Sell again", "text": "Your customers are buying.", "link": None}
    ]
    # Newest first: version 1 in force again; version 2's promotion, ended by the rollback
    # (its recommendation not current any more); version 1's first firing, ended before.
    assert explained["incentiveExplanations"] == [
        # (the day's sale moved the growth it read)
        {"text": "Your revenue grew 34 % week over week, so you are in Starter until 5 January "
                 "2027; we recommend: Sell again."},
        {"text": "Your revenue grew 24 % week over week, so you were in Boost: +2 points on "
                 "every sale (Boost bonus); we recommended: Keep growing. Boost ended and the "
                 "recommendation was withdrawn on 6 December 2026 when the rule changed."},
        {"text": v1_ended},
    ]  # fmt: skip
    assert "Growth boost" not in str(explained)
    # The firing records stay as they were (version 2's too), one more for version 1 in its
    # new activation; every admin change is in the audit log.
    again = (await gql.data(FIRINGS, {"rule": rule["id"]}, as_user=s.author))["ruleFirings"]
    assert again["totalCount"] == 3
    assert [e["node"]["versionNumber"] for e in again["edges"]] == [1, 2, 1]
    [kept] = [e["node"] for e in again["edges"] if e["node"]["versionNumber"] == 2]
    assert {k: v for k, v in kept.items() if k != "explanation"} == {
        k: v for k, v in firing.items() if k != "explanation"
    }
    audit = await gql.data(AUDIT, as_user=s.author)
    actions = [e["node"]["action"] for e in audit["auditLog"]["edges"]]
    assert actions == [
        "incentive_rule.rolled_back", "incentive_rule.approved", "incentive_rule.drafted",
        "incentive_rule.approved", "incentive_rule.created",
    ]  # fmt: skip
    fired = await gql.data(
        """{ auditLog(filter: {entityType: "rule_firing"}) { totalCount } }""", as_user=s.author
    )
    assert fired["auditLog"]["totalCount"] == 3


async def test_an_expired_recommendation_is_not_explained_as_current(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    """A 3-day recommendation read 4 days on: gone from ruleRecommendations, and the
    explanation says it expired, and when (before: "…, so we recommend: Bundle a care
    pack.")."""
    s = await shop(db, clock, tenant, services)
    await active_rule(db, clock, s, condition="revenue_30d >= 100000", actions=[
        Action(ActionKind.RECOMMEND, days=3, title="Bundle a care pack", text="Do it")
    ])  # fmt: skip
    await settle(services)
    await daily(db, clock)
    expires = clock.now() + timedelta(days=3)
    clock.advance(timedelta(days=4))
    partner = tenant.user(Role.PARTNER_ADMIN, 0)
    data = await gql.data(EXPLAINED, as_user=partner)
    assert data["ruleRecommendations"] == []
    [text] = [e["text"] for e in data["incentiveExplanations"]]
    assert "we recommend: Bundle a care pack" not in text, text
    assert "we recommended: Bundle a care pack." in text, text
    assert text.endswith(f" The recommendation expired on {expires.day} {expires:%B %Y}."), text


async def test_an_overlay_that_ran_out_is_explained_in_the_past_tense(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    """A 3-day overlay read 4 days on: the partner reads what it paid and when it ended
    (before: "Partner Rewards pays +1 point on every sale until …", a date gone by)."""
    s = await shop(db, clock, tenant, services)
    await active_rule(db, clock, s, condition="revenue_30d >= 100000", actions=[
        Action(ActionKind.RATE_OVERLAY, days=3, program_id=s.base_program_id, delta_bp=100)
    ])  # fmt: skip
    await settle(services)
    await daily(db, clock)
    ends = clock.now() + timedelta(days=3)
    partner = tenant.user(Role.PARTNER_ADMIN, 0)
    [now] = [
        e["text"] for e in (await gql.data(EXPLAINED, as_user=partner))["incentiveExplanations"]
    ]
    assert "Partner Rewards pays +1 point on every sale until" in now, now
    clock.advance(timedelta(days=4))
    [text] = [
        e["text"] for e in (await gql.data(EXPLAINED, as_user=partner))["incentiveExplanations"]
    ]
    assert "Partner Rewards paid +1 point on every sale" in text, text
    assert text.endswith(f" The +1 point on Partner Rewards ended on {ends.day} {ends:%B %Y}."), (
        text
    )
