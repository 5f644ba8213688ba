"""Bad input gets a code and changes nothing; who may do what with rules (anonymous, wrong
role, other vendor, partner, allowed)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import func, select

from incentives.models import IncentiveRule, IncentiveRuleVersion
from infra.clock import OffsetClock
from infra.db import Database
from partners.roles import Role
from schema.context import Services
from tests.factories import Tenant, gid
from tests.incentives.scenarios import GROWTH, shop
from tests.support import GQL

CREATE = """mutation($input: IncentiveRuleCreateInput!) { incentiveRuleCreate(input: $input) {
  rule { id versions { id } } userErrors { code field message } } }"""
BUDGET = """mutation($input: IncentiveRuleBudgetSetInput!) {
  incentiveRuleBudgetSet(input: $input) { rule { budgetCap { amountMinor } }
  userErrors { code field message } } }"""
APPROVE = """mutation($input: IncentiveRuleApproveInput!) { incentiveRuleApprove(input: $input) {
  rule { status } userErrors { code field message } } }"""


def rule_input(**over: Any) -> dict[str, Any]:
    return {
        "name": "Growth kicker", "condition": GROWTH,
        "actions": [{"kind": "RECOMMEND", "title": "Go", "text": "Sell more."}], **over,
    }  # fmt: skip


async def counts(db: Database) -> tuple[int, int]:
    async with db.session() as session:
        rules = await session.scalar(select(func.count()).select_from(IncentiveRule))
        versions = await session.scalar(select(func.count()).select_from(IncentiveRuleVersion))
        return int(rules or 0), int(versions or 0)


@pytest.mark.parametrize(
    ("over", "code", "field", "words"),
    [
        ({"condition": "revenue_7d >"}, "CONDITION_INVALID", "condition", "line 1, column 13"),
        ({"condition": "revenue_7d > 1 &&\n  (growth > 2"}, "CONDITION_INVALID", "condition",
         "line 2"),
        ({"condition": "weekly_revenue > 100"}, "UNKNOWN_SIGNAL", "condition",
         "revenue_growth_wow"),
        ({"condition": "revenue_7d + 1"}, "NOT_BOOLEAN", "condition", "true or false"),
        ({"budgetCap": {"amount": "-1.00", "currency": "USD"}}, "NEGATIVE_CAP",
         "budgetCap.amount", "zero or more"),
        ({"actions": [{"kind": "RATE_OVERLAY", "programId": "placeholder", "deltaBp": 1500}]},
         "OVERLAY_BEYOND_CAP", "actions.0.deltaBp", "1000 basis points"),
        ({"actions": [{"kind": "PAYOUT_HOLD"}]}, "REQUIRED", "actions.0.partnerReason",
         "partner reads"),
        ({"actions": []}, "NO_ACTIONS", "actions", "at least one"),
        ({"actions": [{"kind": "GROUP_WINDOW", "groupId": "UGFydG5lckdyb3VwOng=", "days": 0}]},
         "INVALID_WINDOW", "actions.0.days", "1 to 366"),
    ],
)  # fmt: skip
async def test_bad_rules_are_coded_and_change_nothing(
    gql: GQL,
    db: Database,
    clock: OffsetClock,
    tenant: Tenant,
    services: Services,
    over: dict[str, Any],
    code: str,
    field: str,
    words: str,
) -> None:
    s = await shop(db, clock, tenant, services)
    for action in over.get("actions", []):
        if action.get("programId") == "placeholder":
            action["programId"] = s.gid("base")
    result = (await gql.data(CREATE, {"input": rule_input(**over)}, as_user=s.author))[
        "incentiveRuleCreate"
    ]
    assert result["rule"] is None
    assert [(e["code"], e["field"]) for e in result["userErrors"]][:1] == [(code, field)]
    assert words in result["userErrors"][0]["message"]
    assert await counts(db) == (0, 0)


async def test_a_negative_cap_self_approval_and_a_second_approval_change_nothing(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    s = await shop(db, clock, tenant, services)
    created = await gql.data(CREATE, {"input": rule_input()}, as_user=s.author)
    rule = created["incentiveRuleCreate"]["rule"]
    negative = await gql.data(BUDGET, {"input": {"id": rule["id"], "budgetCap": {
        "amount": "-5.00", "currency": "USD"}}}, as_user=s.author)  # fmt: skip
    assert negative["incentiveRuleBudgetSet"]["userErrors"][0]["code"] == "NEGATIVE_CAP"
    version = rule["versions"][0]["id"]
    own = await gql.data(APPROVE, {"input": {"versionId": version, "reason": "x"}},
                         as_user=s.author)  # fmt: skip
    assert own["incentiveRuleApprove"]["userErrors"][0]["code"] == "SELF_APPROVAL"
    no_reason = await gql.data(APPROVE, {"input": {"versionId": version, "reason": " "}},
                               as_user=s.approver)  # fmt: skip
    assert no_reason["incentiveRuleApprove"]["userErrors"][0]["code"] == "REQUIRED"
    async with db.session() as session:
        [stored] = list(await session.exec(select(IncentiveRule)))
    assert (stored.status.value, stored.budget_cap_minor, stored.active_version_id) == (
        "DRAFT", None, None
    )  # fmt: skip
    ok = await gql.data(APPROVE, {"input": {"versionId": version, "reason": "fine"}},
                        as_user=s.approver)  # fmt: skip
    assert ok["incentiveRuleApprove"]["rule"]["status"] == "ACTIVE"
    again = await gql.data(APPROVE, {"input": {"versionId": version, "reason": "fine"}},
                           as_user=s.approver)  # fmt: skip
    assert again["incentiveRuleApprove"]["userErrors"][0]["code"] == "NOT_A_DRAFT"


READS = {
    "incentiveRules": "{ incentiveRules { totalCount } }",
    "ruleFirings": "{ ruleFirings { totalCount } }",
    "ruleTemplates": "{ ruleTemplates { key } }",
}


async def test_roles_on_rule_operations(
    gql: GQL,
    db: Database,
    clock: OffsetClock,
    tenant: Tenant,
    other_tenant: Tenant,
    services: Services,
) -> None:
    s = await shop(db, clock, tenant, services)
    created = await gql.data(CREATE, {"input": rule_input()}, as_user=s.author)
    rule_id = created["incentiveRuleCreate"]["rule"]["id"]
    version = created["incentiveRuleCreate"]["rule"]["versions"][0]["id"]
    # Anonymous: UNAUTHENTICATED; partner roles: FORBIDDEN on every rule operation.
    anonymous = await gql(CREATE, {"input": rule_input(name="x")})
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    for role in (Role.PARTNER_ADMIN, Role.PARTNER_REP, Role.CHANNEL_MANAGER, Role.FINANCE):
        refused = await gql(CREATE, {"input": rule_input(name="x")}, as_user=tenant.user(role))
        assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN", role
        approve = await gql(APPROVE, {"input": {"versionId": version, "reason": "x"}},
                            as_user=tenant.user(role))  # fmt: skip
        assert approve["errors"][0]["extensions"]["code"] == "FORBIDDEN", role
    for role in (Role.PARTNER_ADMIN, Role.PARTNER_REP):
        for query in READS.values():
            refused = await gql(query, as_user=tenant.user(role))
            assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        dry = await gql("query($v: ID!) { incentiveRuleDryRun(versionId: $v) { firing } }",
                        {"v": version}, as_user=tenant.user(role))  # fmt: skip
        assert dry["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    # Vendor staff read rules; a channel manager and finance may not change them.
    for role in (Role.CHANNEL_MANAGER, Role.FINANCE):
        seen = await gql.data(READS["incentiveRules"], as_user=tenant.user(role))
        assert seen["incentiveRules"]["totalCount"] == 1
    # Another vendor's admin: the rule does not exist for it.
    stranger = other_tenant.user(Role.VENDOR_ADMIN)
    assert (await gql.data(READS["incentiveRules"], as_user=stranger))["incentiveRules"][
        "totalCount"
    ] == 0
    one = await gql.data("query($id: ID!) { incentiveRule(id: $id) { name } }",
                         {"id": rule_id}, as_user=stranger)  # fmt: skip
    assert one == {"incentiveRule": None}
    theirs = await gql.data(APPROVE, {"input": {"versionId": version, "reason": "x"}},
                            as_user=stranger)  # fmt: skip
    assert theirs["incentiveRuleApprove"]["userErrors"][0]["code"] == "NOT_FOUND"
    dry = await gql.data("query($v: ID!) { incentiveRuleDryRun(versionId: $v) { firing } }",
                         {"v": version}, as_user=stranger)  # fmt: skip
    assert dry == {"incentiveRuleDryRun": None}
    # Their approval changed nothing.
    async with db.session() as session:
        [stored] = list(await session.exec(select(IncentiveRule)))
    assert stored.status.value == "DRAFT"
    # Templates are the admin's.
    templates = await gql.data(READS["ruleTemplates"], as_user=s.author)
    assert [t["key"] for t in templates["ruleTemplates"]] == [
        "growth_promotion", "margin_guard", "payout_spike_review", "engagement_boost"
    ]  # fmt: skip
    assert gid(tenant.partners[0])  # (ids are global)
