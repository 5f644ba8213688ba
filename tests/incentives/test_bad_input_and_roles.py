"""Bad input gets a code and changes nothing; who may do what with rules (anonymous, wrong
role, other vendor, partner, allowed)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, NamedTuple

import pytest
from sqlmodel import func, select

from incentives import rules
from incentives.actions import Action, ActionKind
from incentives.models import IncentiveRule, IncentiveRuleVersion
from infra.audit import AuditEntry
from infra.clock import OffsetClock
from infra.db import Database
from infra.outbox import OutboxEvent
from partners.audit_log import AuditEntity
from partners.roles import Role
from schema.context import Services
from tests.earnings import scenarios as es
from tests.factories import Tenant, gid, principal_of
from tests.incentives.rules import active_rule
from tests.incentives.scenarios import GROWTH, Shop, shop
from tests.support import GQL, error_codes, names_input_field

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
        # A link leaves the app only for a URL with a host; "//host" and "/\\host" are
        # other sites to a browser, not paths (they passed as paths).
        *[({"actions": [{"kind": "RECOMMEND", "title": "Go", "text": "Now.", "link": link}]},
           "INVALID_ACTION", "actions.0.link", "http(s) URL")
          for link in ("//evil.example/x", "/\\evil.example", "javascript:alert(1)",
                       "https://")],
        # A line break (header splitting) is an identifier's refused character (infra.text).
        ({"actions": [{"kind": "RECOMMEND", "title": "Go", "text": "Now.",
                       "link": "/deals\nSet-Cookie: a=b"}]},
         "INVALID_CHARACTERS", "actions.0.link", "U+000A"),
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
    assert names_input_field("incentiveRuleCreate", field)
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


async def test_a_draft_written_with_ones_own_api_key_is_ones_own(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    """Four eyes hold through an API key: a draft written with a key is its maker's, so
    the admin who made the key cannot approve it (before, the draft had no author and its
    maker approved it signed in); another admin can."""
    s = await shop(db, clock, tenant, services)
    made = await gql.data(
        'mutation { apiKeyCreate(input: {name: "my script", role: VENDOR_ADMIN}) { secret } }',
        as_user=s.author,
    )
    drafted = await gql(CREATE, {"input": rule_input()}, token=made["apiKeyCreate"]["secret"])
    version = drafted["data"]["incentiveRuleCreate"]["rule"]["versions"][0]["id"]
    own = await gql.data(APPROVE, {"input": {"versionId": version, "reason": "mine"}},
                         as_user=s.author)  # fmt: skip
    assert own["incentiveRuleApprove"]["userErrors"][0]["code"] == "SELF_APPROVAL"
    ok = await gql.data(APPROVE, {"input": {"versionId": version, "reason": "fine"}},
                        as_user=s.approver)  # fmt: skip
    assert ok["incentiveRuleApprove"]["rule"]["status"] == "ACTIVE"


async def test_an_api_key_approves_no_draft_whoever_made_it(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    """An API key has no person behind it to be the second pair of eyes, even one made by
    an admin other than the author: refused as PERSON_REQUIRED (it was SELF_APPROVAL, "not
    its author", which the key's maker is not), and nothing is decided, audited or told."""
    s = await shop(db, clock, tenant, services)
    created = await gql.data(CREATE, {"input": rule_input()}, as_user=s.author)
    version = created["incentiveRuleCreate"]["rule"]["versions"][0]["id"]
    made = await gql.data(
        'mutation { apiKeyCreate(input: {name: "approver script", role: VENDOR_ADMIN}) '
        "{ secret } }",
        as_user=s.approver,
    )
    before = await _decisions(db)
    refused = await gql(APPROVE, {"input": {"versionId": version, "reason": "scripted"}},
                        token=made["apiKeyCreate"]["secret"])  # fmt: skip
    payload = refused["data"]["incentiveRuleApprove"]
    assert payload["rule"] is None
    assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [("PERSON_REQUIRED", None)]
    assert await _decisions(db) == before
    assert before[0] == ["DRAFT"]
    ok = await gql.data(APPROVE, {"input": {"versionId": version, "reason": "fine"}},
                        as_user=s.approver)  # fmt: skip
    assert ok["incentiveRuleApprove"]["rule"]["status"] == "ACTIVE"


async def _decisions(db: Database) -> tuple[list[str], list[str], int]:
    """The versions' statuses, the rule audit's actions, and the outbox's events."""
    async with db.session() as session:
        statuses = [v.status.value for v in await session.exec(select(IncentiveRuleVersion))]
        actions = [
            e.action
            for e in await session.exec(
                select(AuditEntry)
                .where(AuditEntry.entity_type == AuditEntity.INCENTIVE_RULE.value)
                .order_by(AuditEntry.id)
            )
        ]
        events = (await session.exec(select(func.count()).select_from(OutboxEvent))).one()
    return statuses, actions, events


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


class Ids(NamedTuple):
    rule: str
    draft: str | None  # a version 3 drafted by the author (for approve)
    group: str
    program: str


class State(NamedTuple):
    """What a refused call must leave as it was."""

    rules: dict[uuid.UUID, tuple[Any, ...]]
    versions: list[tuple[uuid.UUID, int, str]]
    audit: int

    def rule(self) -> tuple[Any, ...]:
        """(status, active version number, cap, currency) of the rule under test."""
        [shown] = [r[1:5] for r in self.rules.values() if r[0] == "Growth kicker"]
        return shown


async def state(db: Database) -> State:
    async with db.session() as session:
        versions = list(await session.exec(select(IncentiveRuleVersion)))
        number = {v.id: v.number for v in versions}
        rules = {
            r.id: (
                r.name, r.status.value,
                number[r.active_version_id] if r.active_version_id else None,
                r.budget_cap_minor, r.currency, r.updated_at,
            )
            for r in await session.exec(select(IncentiveRule))
        }  # fmt: skip
        audit = await session.scalar(
            select(func.count()).select_from(AuditEntry).where(
                AuditEntry.entity_type == AuditEntity.INCENTIVE_RULE.value
            )
        )  # fmt: skip
    return State(rules, sorted((v.rule_id, v.number, v.status.value) for v in versions),
                 int(audit or 0))  # fmt: skip


class Case(NamedTuple):
    input_type: str
    input: Callable[[Ids], dict[str, Any]]
    prepare: str | None  # "pause": the rule is paused first; "draft": a version 3 is drafted
    allowed: str  # "author" or "approver" (four eyes)
    effect: Callable[[State], Any]  # what the allowed call changes …
    to: Any  # … to this
    foreign_field: str  # where another vendor's admin is told NOT_FOUND


GOVERNANCE = {
    "incentiveRuleCreate": Case(
        "IncentiveRuleCreateInput",
        lambda i: rule_input(name="Margin kicker", actions=[
            {"kind": "RATE_OVERLAY", "programId": i.program, "deltaBp": 100}]),
        None, "author", lambda st: len(st.rules), 2, "actions.0.programId"),
    "incentiveRuleCreateFromTemplate": Case(
        "IncentiveRuleFromTemplateInput",
        lambda i: {"template": "growth_promotion", "groupId": i.group},
        None, "author", lambda st: len(st.rules), 2, "groupId"),
    "incentiveRuleDraft": Case(
        "IncentiveRuleDraftInput",
        lambda i: {"ruleId": i.rule, "condition": GROWTH,
                   "actions": [{"kind": "RECOMMEND", "title": "a", "text": "b"}]},
        None, "author", lambda st: max(v[1:] for v in st.versions), (3, "DRAFT"), "ruleId"),
    "incentiveRuleApprove": Case(
        "IncentiveRuleApproveInput", lambda i: {"versionId": i.draft, "reason": "ok"},
        "draft", "approver", lambda st: st.rule()[1], 3, "versionId"),
    "incentiveRulePause": Case(
        "IncentiveRuleStatusInput", lambda i: {"id": i.rule, "reason": "x"},
        None, "author", lambda st: st.rule()[0], "PAUSED", "id"),
    "incentiveRuleResume": Case(
        "IncentiveRuleStatusInput", lambda i: {"id": i.rule, "reason": "x"},
        "pause", "author", lambda st: st.rule()[0], "ACTIVE", "id"),
    "incentiveRuleRollBack": Case(
        "IncentiveRuleRollBackInput", lambda i: {"id": i.rule, "toVersion": 1, "reason": "x"},
        None, "author", lambda st: st.rule()[1], 1, "id"),
    "incentiveRuleBudgetSet": Case(
        "IncentiveRuleBudgetSetInput",
        lambda i: {"id": i.rule, "budgetCap": {"amount": "5.00", "currency": "USD"}},
        None, "author", lambda st: st.rule()[2], 5_00, "id"),
}  # fmt: skip


async def governed_rule(db: Database, clock: OffsetClock, s: Shop, prepare: str | None) -> Ids:
    """The shop's rule with versions 1 and 2 approved (2 active), 20.00 USD cap; paused or
    with a version 3 drafted when the case needs it."""
    rule = await active_rule(
        db, clock, s, condition=GROWTH, budget_cap_minor=20_00,
        actions=[Action(ActionKind.RECOMMEND, title="v1", text="t")],
    )  # fmt: skip
    author, approver = principal_of(s.author), principal_of(s.approver)

    async def versions(session: Any) -> uuid.UUID | None:
        def draft() -> Any:
            return rules.draft_version(
                session, author, clock, rule_id=rule.id, condition=GROWTH,
                actions=[Action(ActionKind.RECOMMEND, title="v2", text="t")],
            )  # fmt: skip

        v2 = await draft()
        await rules.approve(session, approver, clock, version_id=v2.id, reason="ok")
        if prepare == "pause":
            await rules.set_status(session, author, clock, rule_id=rule.id, pause=True,
                                   reason="x")  # fmt: skip
        v3 = await draft() if prepare == "draft" else None
        return v3.id if v3 else None

    v3 = await es.tx(db, versions)
    return Ids(gid("IncentiveRule", rule.id), gid("IncentiveRuleVersion", v3) if v3 else None,
               s.gid("group"), s.gid("base"))  # fmt: skip


@pytest.mark.parametrize("mutation", list(GOVERNANCE))
async def test_who_may_govern_rules_and_refusals_change_nothing(
    gql: GQL,
    db: Database,
    clock: OffsetClock,
    tenant: Tenant,
    other_tenant: Tenant,
    services: Services,
    mutation: str,
) -> None:
    """Anonymous: UNAUTHENTICATED; finance, channel manager and partner roles: FORBIDDEN;
    another vendor's admin: NOT_FOUND at the input field it sent; none of them changes the
    rule (status, active version, cap, versions, audit). A vendor admin may."""
    case = GOVERNANCE[mutation]
    s = await shop(db, clock, tenant, services)
    ids = await governed_rule(db, clock, s, case.prepare)
    doc = f"""mutation($input: {case.input_type}!) {{ {mutation}(input: $input) {{
      userErrors {{ code field message }} }} }}"""
    variables = {"input": case.input(ids)}
    before = await state(db)
    assert error_codes(await gql(doc, variables)) == ["UNAUTHENTICATED"]
    for role in (Role.FINANCE, Role.CHANNEL_MANAGER, Role.PARTNER_ADMIN, Role.PARTNER_REP):
        refused = await gql(doc, variables, as_user=tenant.user(role))
        assert error_codes(refused) == ["FORBIDDEN"], role
        assert refused["data"] is None, role
    foreign = await gql.data(doc, variables, as_user=other_tenant.user(Role.VENDOR_ADMIN))
    errors = foreign[mutation]["userErrors"]
    assert [(e["code"], e["field"]) for e in errors] == [("NOT_FOUND", case.foreign_field)]
    assert names_input_field(mutation, errors[0]["field"])
    assert await state(db) == before
    assert case.effect(before) != case.to
    user = s.author if case.allowed == "author" else s.approver
    done = await gql.data(doc, variables, as_user=user)
    assert done[mutation]["userErrors"] == []
    assert case.effect(await state(db)) == case.to
