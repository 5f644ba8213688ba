"""A rule's whole life through GraphQL (issue 13, "Done means"): draft -> dry run ->
approve (four eyes) -> fire -> explained to the partner -> rolled back."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import col, select

from earnings.models import EarningEntry, Program
from infra.clock import OffsetClock
from infra.db import Database
from partners.roles import Role
from schema.context import Services
from tests.earnings import scenarios as es
from tests.factories import Tenant, gid
from tests.incentives.rules import daily
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


async def test_a_rule_from_draft_to_rollback(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    s = await shop(db, clock, tenant, services)
    partner = tenant.user(Role.PARTNER_ADMIN, 0)

    # Version 1: a mild rule, approved (it fires for nobody here).
    created = await gql.data(CREATE, {"input": {
        "name": "Growth boost", "condition": "days_since_last_sale != null && "
        "days_since_last_sale > 30", "period": "WEEK",
        "actions": [{"kind": "RECOMMEND", "days": 14, "title": "Sell again",
                     "text": "It has been a while."}],
    }}, as_user=s.author)  # fmt: skip
    rule = created["incentiveRuleCreate"]["rule"]
    assert created["incentiveRuleCreate"]["userErrors"] == []
    assert rule["status"] == "DRAFT"
    [v1] = rule["versions"]
    approved = await gql.data(APPROVE, {"input": {"versionId": v1["id"], "reason": "ok"}},
                              as_user=s.approver)  # fmt: skip
    assert approved["incentiveRuleApprove"]["rule"]["status"] == "ACTIVE"

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
    ] == 0
    assert await gql.data(EXPLAINED, as_user=partner) == {
        "incentiveExplanations": [], "ruleRecommendations": []
    }  # fmt: skip

    # Four eyes: the author may not approve its own draft; the second admin does.
    own = await gql.data(APPROVE, {"input": {"versionId": v2["id"], "reason": "mine"}},
                         as_user=s.author)  # fmt: skip
    assert [e["code"] for e in own["incentiveRuleApprove"]["userErrors"]] == ["SELF_APPROVAL"]
    ok = await gql.data(APPROVE, {"input": {"versionId": v2["id"], "reason": "Q4 push"}},
                        as_user=s.approver)  # fmt: skip
    assert ok["incentiveRuleApprove"]["rule"]["activeVersion"] == {
        "number": 2, "approvalReason": "Q4 push"
    }  # fmt: skip

    # Fire: the daily evaluation.
    assert await daily(db, clock) == 1
    assert await daily(db, clock) == 1  # once a day
    firings = (await gql.data(FIRINGS, {"rule": rule["id"]}, as_user=s.author))["ruleFirings"]
    [firing] = [e["node"] for e in firings["edges"]]
    assert (firing["versionNumber"], firing["partnerId"], firing["period"], firing["trigger"]) == (
        2, gid(tenant.partners[0]), "2026-12", "DAILY"
    )  # fmt: skip
    assert {"name": "revenue_growth_wow", "value": "0.24"} in firing["values"]
    assert [o["kind"] for o in firing["outcomes"]] == ["GROUP_WINDOW", "RECOMMEND", "NOTIFY_STAFF"]

    # Explained to the partner, in plain language; the other partner reads nothing.
    expected = (
        "Your revenue grew 24 % week over week, so you are in Boost until 4 January 2027: "
        "+2 points on every sale (Boost bonus); we recommend: Keep growing."
    )
    assert firing["explanation"] == expected
    assert await gql.data(EXPLAINED, as_user=partner) == {
        "incentiveExplanations": [{"text": expected}],
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

    # Roll back to version 1: the window ends now, the recommendation is withdrawn.
    undo = {"id": rule["id"], "toVersion": 1, "reason": "Too generous"}
    back = await gql.data(ROLL_BACK, {"input": undo}, as_user=s.author)
    assert back["incentiveRuleRollBack"] == {
        "rule": {"status": "ACTIVE", "activeVersion": {"number": 1}}, "userErrors": []
    }  # fmt: skip
    clock.freeze(T0 + timedelta(days=2))
    after = await es.sale(db, clock, tenant, 100_00, partner_index=0)
    await settle(services)
    assert await paid_by(db, after.id) == {"Partner Rewards": 8_00}
    assert (await gql.data(EXPLAINED, as_user=partner))["ruleRecommendations"] == []
    # The firing record stays as it was; every admin change is in the audit log.
    again = (await gql.data(FIRINGS, {"rule": rule["id"]}, as_user=s.author))["ruleFirings"]
    assert again["totalCount"] == 1
    audit = await gql.data(AUDIT, as_user=s.author)
    actions = [e["node"]["action"] for e in audit["auditLog"]["edges"]]
    assert actions == [
        "incentive_rule.rolled_back", "incentive_rule.approved", "incentive_rule.drafted",
        "incentive_rule.approved", "incentive_rule.created",
    ]  # fmt: skip
    fired = await gql.data(
        """{ auditLog(filter: {entityType: "rule_firing"}) { totalCount } }""", as_user=s.author
    )
    assert fired["auditLog"]["totalCount"] == 1
