"""Four eyes on a rule's budget (issue 13): tightening applies at once; loosening a rule's
budget, approved or not yet (a higher cap, no cap, another currency), needs a reason and
waits for a second vendor admin, who approves it with a reason.
Until then the rule spends against its old cap. Every step is audited; refusals change
nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import select

from incentives import rules
from incentives.actions import Action, ActionKind
from incentives.models import IncentiveRule, IncentiveRuleBudgetChange, Period, RuleStatus
from infra.audit import AuditEntry
from infra.clock import OffsetClock
from infra.db import Database
from partners.audit_log import AuditEntity
from partners.models import ApiKey
from partners.roles import Role
from schema.context import Services
from tests.earnings import scenarios as es
from tests.factories import Tenant, gid, principal_of
from tests.incentives.rules import _versions, active_rule, daily
from tests.incentives.scenarios import GROWTH, Shop, settle, shop
from tests.incentives.test_actions import FIRINGS, nodes
from tests.incentives.test_bad_input_and_roles import CREATE, rule_input
from tests.support import GQL, error_codes, names_input_field, sql_statements

CHANGE = """budgetChange { id status fromCap { amountMinor currency } toCap { amountMinor
  currency } toCurrency reason requestedById decidedById decisionReason }"""
SET = f"""mutation($input: IncentiveRuleBudgetSetInput!) {{ incentiveRuleBudgetSet(input: $input)
  {{ applied rule {{ budgetCap {{ amountMinor currency }} }} {CHANGE}
  userErrors {{ code field message }} }} }}"""
APPROVE = f"""mutation($input: IncentiveRuleBudgetChangeDecideInput!) {{
  incentiveRuleBudgetChangeApprove(input: $input) {{ applied
  rule {{ budgetCap {{ amountMinor currency }} }} {CHANGE}
  userErrors {{ code field message }} }} }}"""
CANCEL = APPROVE.replace("incentiveRuleBudgetChangeApprove", "incentiveRuleBudgetChangeCancel")
RULE = """query($id: ID!) { incentiveRule(id: $id) { budgetCap { amountMinor currency }
  pendingBudgetChange { id status toCap { amountMinor } reason requestedById } } }"""


def usd(amount: str, currency: str = "USD") -> dict[str, str]:
    return {"amount": amount, "currency": currency}


async def governed(
    db: Database,
    clock: OffsetClock,
    s: Shop,
    *,
    cap: int | None = 20_00,
    paused: bool = False,
    **extra: Any,
) -> str:
    """An approved rule (active, or paused) with this cap in USD; its global id."""
    extra.setdefault("actions", [Action(ActionKind.RECOMMEND, title="Go", text="Sell more.")])
    extra.setdefault("condition", GROWTH)
    rule = await active_rule(db, clock, s, budget_cap_minor=cap, **extra)
    if paused:
        await es.tx(db, lambda session: rules.set_status(
            session, principal_of(s.author), clock, rule_id=rule.id, pause=True, reason="x",
        ))  # fmt: skip
    return gid("IncentiveRule", rule.id)


async def budget(db: Database) -> tuple[int | None, str]:
    async with db.session() as session:
        [rule] = list(await session.exec(select(IncentiveRule)))
    return rule.budget_cap_minor, rule.currency


async def changes(db: Database) -> list[tuple[str, int | None, str]]:
    async with db.session() as session:
        rows = await session.exec(
            select(IncentiveRuleBudgetChange).order_by(IncentiveRuleBudgetChange.requested_at)
        )
        return [(c.status.value, c.to_cap_minor, c.to_currency) for c in rows]


async def audit(db: Database) -> list[tuple[str, str | None]]:
    """The budget steps audited on rules: (action, reason), oldest first."""
    async with db.session() as session:
        rows = await session.exec(
            select(AuditEntry)
            .where(AuditEntry.entity_type == AuditEntity.INCENTIVE_RULE.value)
            .order_by(AuditEntry.id)
        )
        return [(e.action, e.reason) for e in rows if "budget" in e.action]


async def everything(db: Database) -> tuple[Any, ...]:
    return await budget(db), await changes(db), await audit(db)


def errors_of(result: dict[str, Any]) -> list[tuple[str, str]]:
    [payload] = result.values()
    return [(e["code"], e["field"]) for e in payload["userErrors"]]


async def test_a_tighter_budget_applies_at_once(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    s = await shop(db, clock, tenant, services)
    rule = await governed(db, clock, s, cap=None)
    # A cap where there was none, then a lower one: no reason needed, no second admin.
    for amount, minor in (("20.00", 20_00), ("5.00", 5_00)):
        done = await gql.data(SET, {"input": {"id": rule, "budgetCap": usd(amount)}},
                              as_user=s.author)  # fmt: skip
        assert done["incentiveRuleBudgetSet"] == {
            "applied": True, "rule": {"budgetCap": {"amountMinor": minor, "currency": "USD"}},
            "budgetChange": None, "userErrors": [],
        }  # fmt: skip
    assert await everything(db) == (
        (5_00, "USD"), [], [("incentive_rule.budget_set", None)] * 2
    )  # fmt: skip


async def test_raising_an_active_rules_cap_waits_for_a_second_admin(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    s = await shop(db, clock, tenant, services)
    rule = await governed(db, clock, s)
    raise_to = {"id": rule, "budgetCap": usd("50.00")}
    # No reason: refused, nothing recorded.
    refused = await gql.data(SET, {"input": raise_to}, as_user=s.author)
    assert errors_of(refused) == [("REQUIRED", "reason")]
    assert names_input_field("incentiveRuleBudgetSet", "reason")
    assert await everything(db) == ((20_00, "USD"), [], [])
    asked = await gql.data(SET, {"input": raise_to | {"reason": "Q4 push"}}, as_user=s.author)
    result = asked["incentiveRuleBudgetSet"]
    assert result["applied"] is False
    assert result["rule"]["budgetCap"] == {"amountMinor": 20_00, "currency": "USD"}
    change = result["budgetChange"]
    assert change == {
        "id": change["id"], "status": "PENDING",
        "fromCap": {"amountMinor": 20_00, "currency": "USD"},
        "toCap": {"amountMinor": 50_00, "currency": "USD"}, "toCurrency": "USD",
        "reason": "Q4 push", "requestedById": gid("User", s.author.id), "decidedById": None,
        "decisionReason": None,
    }  # fmt: skip
    shown = await gql.data(RULE, {"id": rule}, as_user=s.approver)
    assert shown["incentiveRule"]["budgetCap"]["amountMinor"] == 20_00
    assert shown["incentiveRule"]["pendingBudgetChange"]["id"] == change["id"]
    # The one who asked cannot approve it; a reason is required of the approver.
    pending = await everything(db)
    own = await gql.data(APPROVE, {"input": {"id": change["id"], "reason": "mine"}},
                         as_user=s.author)  # fmt: skip
    assert errors_of(own) == [("SELF_APPROVAL", "id")]
    no_reason = await gql.data(APPROVE, {"input": {"id": change["id"], "reason": " "}},
                               as_user=s.approver)  # fmt: skip
    assert errors_of(no_reason) == [("REQUIRED", "reason")]
    assert await everything(db) == pending
    assert pending[:2] == ((20_00, "USD"), [("PENDING", 50_00, "USD")])
    # The second admin approves: the rule's cap is the change's.
    ok = await gql.data(APPROVE, {"input": {"id": change["id"], "reason": "budget agreed"}},
                        as_user=s.approver)  # fmt: skip
    approved = ok["incentiveRuleBudgetChangeApprove"]
    assert approved["userErrors"] == []
    assert approved["applied"] is True
    assert approved["rule"]["budgetCap"] == {"amountMinor": 50_00, "currency": "USD"}
    assert approved["budgetChange"]["status"] == "APPLIED"
    assert approved["budgetChange"]["decidedById"] == gid("User", s.approver.id)
    assert approved["budgetChange"]["decisionReason"] == "budget agreed"
    shown = await gql.data(RULE, {"id": rule}, as_user=s.approver)
    assert shown["incentiveRule"]["pendingBudgetChange"] is None
    again = await gql.data(APPROVE, {"input": {"id": change["id"], "reason": "again"}},
                           as_user=s.approver)  # fmt: skip
    assert errors_of(again) == [("NOT_PENDING", "id")]
    assert await everything(db) == (
        (50_00, "USD"), [("APPLIED", 50_00, "USD")],
        [("incentive_rule.budget_change_requested", "Q4 push"),
         ("incentive_rule.budget_change_approved", "budget agreed")],
    )  # fmt: skip


@pytest.mark.parametrize(
    ("cap", "paused", "after"),
    [(None, False, (None, "USD")), (usd("20.00", "EUR"), True, (20_00, "EUR"))],
    ids=["removal", "currency-on-a-paused-rule"],
)
async def test_removing_the_cap_or_moving_its_currency_waits_likewise(
    gql: GQL,
    db: Database,
    clock: OffsetClock,
    tenant: Tenant,
    services: Services,
    cap: dict[str, str] | None,
    paused: bool,
    after: tuple[int | None, str],
) -> None:
    s = await shop(db, clock, tenant, services)
    rule = await governed(db, clock, s, paused=paused)
    asked = await gql.data(SET, {"input": {"id": rule, "budgetCap": cap, "reason": "why"}},
                           as_user=s.author)  # fmt: skip
    assert asked["incentiveRuleBudgetSet"]["applied"] is False
    change = asked["incentiveRuleBudgetSet"]["budgetChange"]["id"]
    own = await gql.data(APPROVE, {"input": {"id": change, "reason": "x"}}, as_user=s.author)
    assert errors_of(own) == [("SELF_APPROVAL", "id")]
    assert await budget(db) == (20_00, "USD")
    ok = await gql.data(APPROVE, {"input": {"id": change, "reason": "fine"}}, as_user=s.approver)
    assert ok["incentiveRuleBudgetChangeApprove"]["applied"] is True
    assert await budget(db) == after
    async with db.session() as session:
        [stored] = list(await session.exec(select(IncentiveRule)))
    assert stored.status is (RuleStatus.PAUSED if paused else RuleStatus.ACTIVE)
    assert [a for a, _ in await audit(db)] == [
        "incentive_rule.budget_change_requested", "incentive_rule.budget_change_approved"
    ]  # fmt: skip


async def test_until_approved_the_old_cap_stops_rate_actions(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    """As in test_budget_and_currency: either partner's overlay spends the 0.30 cap; a raise
    to 100.00 asked for (not approved) leaves the second one stopped at BUDGET_REACHED."""
    s = await shop(db, clock, tenant, services)
    rule = await governed(db, clock, s, cap=30, condition="revenue_30d > 0", period=Period.DAY,
                          actions=[Action(ActionKind.RATE_OVERLAY, days=1,
                                          program_id=s.base_program_id, delta_bp=200)])  # fmt: skip
    asked = await gql.data(SET, {"input": {"id": rule, "budgetCap": usd("100.00"),
                                           "reason": "more"}}, as_user=s.author)  # fmt: skip
    assert asked["incentiveRuleBudgetSet"]["applied"] is False
    assert await daily(db, clock) == 2
    firings = nodes(await gql.data(FIRINGS, as_user=s.author), "ruleFirings")
    assert sorted(str(f["outcomes"][0]["skipped"]) for f in firings) == [
        "BUDGET_REACHED", "None"
    ]  # fmt: skip


async def test_a_change_asked_with_ones_own_api_key_is_ones_own(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    s = await shop(db, clock, tenant, services)
    rule = await governed(db, clock, s)
    made = await gql.data(
        'mutation { apiKeyCreate(input: {name: "my script", role: VENDOR_ADMIN}) { secret } }',
        as_user=s.author,
    )
    asked = await gql(SET, {"input": {"id": rule, "budgetCap": None, "reason": "script"}},
                      token=made["apiKeyCreate"]["secret"])  # fmt: skip
    change = asked["data"]["incentiveRuleBudgetSet"]["budgetChange"]
    assert change["requestedById"] == gid("User", s.author.id)
    own = await gql.data(APPROVE, {"input": {"id": change["id"], "reason": "x"}},
                         as_user=s.author)  # fmt: skip
    assert errors_of(own) == [("SELF_APPROVAL", "id")]
    ok = await gql.data(APPROVE, {"input": {"id": change["id"], "reason": "ok"}},
                        as_user=s.approver)  # fmt: skip
    assert ok["incentiveRuleBudgetChangeApprove"]["userErrors"] == []
    assert await budget(db) == (None, "USD")


async def test_an_api_key_approves_no_budget_change_whoever_made_it(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    """A key made by an admin other than the one who asked is still no second person:
    PERSON_REQUIRED (it was SELF_APPROVAL, "not the one who asked for it"); nothing
    changes."""
    s = await shop(db, clock, tenant, services)
    rule = await governed(db, clock, s)
    asked = await gql.data(SET, {"input": {"id": rule, "budgetCap": None, "reason": "more"}},
                           as_user=s.author)  # fmt: skip
    change = asked["incentiveRuleBudgetSet"]["budgetChange"]["id"]
    made = await gql.data(
        'mutation { apiKeyCreate(input: {name: "approver script", role: VENDOR_ADMIN}) '
        "{ secret } }",
        as_user=s.approver,
    )
    before = await everything(db)
    refused = await gql(APPROVE, {"input": {"id": change, "reason": "scripted"}},
                        token=made["apiKeyCreate"]["secret"])  # fmt: skip
    assert errors_of(refused["data"]) == [("PERSON_REQUIRED", None)]
    assert await everything(db) == before
    assert before[:2] == ((20_00, "USD"), [("PENDING", None, "USD")])


async def test_a_key_made_with_ones_own_key_is_ones_own_too(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    """A key made with a key had no maker, so a change asked with it had no requester and
    the admin behind both keys approved it herself: four eyes held by one. Keys are made
    by people only now (PERSON_REQUIRED), and a change asked with one is its maker's."""
    s = await shop(db, clock, tenant, services)
    rule = await governed(db, clock, s)
    make = 'mutation { apiKeyCreate(input: {name: "script", role: VENDOR_ADMIN}) { secret } }'
    first = (await gql.data(make, as_user=s.author))["apiKeyCreate"]["secret"]
    # Its maker is shown to the vendor's admins (whose keys to revoke when one leaves).
    keys = await gql.data("{ apiKeys { edges { node { createdById } } } }", as_user=s.approver)
    assert keys["apiKeys"]["edges"] == [{"node": {"createdById": gid("User", s.author.id)}}]
    refused = await gql(
        'mutation { apiKeyCreate(input: {name: "copy", role: VENDOR_ADMIN}) '
        "{ secret userErrors { code field } } }",
        token=first,
    )
    assert refused["data"]["apiKeyCreate"] == {
        "secret": None, "userErrors": [{"code": "PERSON_REQUIRED", "field": None}]
    }  # fmt: skip
    asked = await gql(SET, {"input": {"id": rule, "budgetCap": None, "reason": "script"}},
                      token=first)  # fmt: skip
    change = asked["data"]["incentiveRuleBudgetSet"]["budgetChange"]
    assert change["requestedById"] == gid("User", s.author.id)
    own = await gql.data(APPROVE, {"input": {"id": change["id"], "reason": "x"}},
                         as_user=s.author)  # fmt: skip
    assert errors_of(own) == [("SELF_APPROVAL", "id")]
    assert await budget(db) == (20_00, "USD")


async def test_a_change_is_stale_once_the_budget_moved_and_a_new_request_replaces_it(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    s = await shop(db, clock, tenant, services)
    rule = await governed(db, clock, s)

    async def ask(amount: str) -> str:
        wanted = {"id": rule, "budgetCap": usd(amount), "reason": f"to {amount}"}
        done = await gql.data(SET, {"input": wanted}, as_user=s.author)
        change: str = done["incentiveRuleBudgetSet"]["budgetChange"]["id"]
        return change

    first = await ask("50.00")
    second = await ask("80.00")  # replaces the first
    replaced = await gql.data(APPROVE, {"input": {"id": first, "reason": "ok"}},
                              as_user=s.approver)  # fmt: skip
    assert errors_of(replaced) == [("NOT_PENDING", "id")]
    assert await changes(db) == [("SUPERSEDED", 50_00, "USD"), ("PENDING", 80_00, "USD")]
    # A tightening meanwhile applies, and the pending raise (asked from 20.00) is stale.
    tightened = await gql.data(SET, {"input": {"id": rule, "budgetCap": usd("10.00")}},
                               as_user=s.approver)  # fmt: skip
    assert tightened["incentiveRuleBudgetSet"]["applied"] is True
    shown = await gql.data(RULE, {"id": rule}, as_user=s.author)
    assert shown["incentiveRule"]["pendingBudgetChange"] is None
    before = await everything(db)
    stale = await gql.data(APPROVE, {"input": {"id": second, "reason": "ok"}},
                           as_user=s.approver)  # fmt: skip
    assert errors_of(stale) == [("BUDGET_CHANGED", "id")]
    assert await everything(db) == before
    assert before[:2] == (
        (10_00, "USD"), [("SUPERSEDED", 50_00, "USD"), ("SUPERSEDED", 80_00, "USD")]
    )  # fmt: skip


async def test_a_pending_change_is_cancelled_with_a_reason(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    s = await shop(db, clock, tenant, services)
    rule = await governed(db, clock, s)
    asked = await gql.data(SET, {"input": {"id": rule, "budgetCap": usd("90.00"),
                                           "reason": "more"}}, as_user=s.author)  # fmt: skip
    change = asked["incentiveRuleBudgetSet"]["budgetChange"]["id"]
    no_reason = await gql.data(CANCEL, {"input": {"id": change, "reason": ""}},
                               as_user=s.approver)  # fmt: skip
    assert errors_of(no_reason) == [("REQUIRED", "reason")]
    cancelled = await gql.data(CANCEL, {"input": {"id": change, "reason": "not this quarter"}},
                               as_user=s.approver)  # fmt: skip
    result = cancelled["incentiveRuleBudgetChangeCancel"]
    assert (result["applied"], result["budgetChange"]["status"]) == (False, "CANCELLED")
    late = await gql.data(APPROVE, {"input": {"id": change, "reason": "ok"}}, as_user=s.approver)
    assert errors_of(late) == [("NOT_PENDING", "id")]
    assert await everything(db) == (
        (20_00, "USD"), [("CANCELLED", 90_00, "USD")],
        [("incentive_rule.budget_change_requested", "more"),
         ("incentive_rule.budget_change_cancelled", "not this quarter")],
    )  # fmt: skip


async def test_a_draft_rules_budget_is_loosened_with_four_eyes_too(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    """A rule not yet approved: its version's approver approves the budget they see, so a
    cap raised or removed meanwhile waits for a second admin as on an active rule (it was
    set at once: removed the moment before the approval, it went live unseen)."""
    s = await shop(db, clock, tenant, services)
    made = await gql.data(CREATE, {"input": rule_input(budgetCap=usd("10.00"))},
                          as_user=s.author)  # fmt: skip
    rule = made["incentiveRuleCreate"]["rule"]["id"]
    for cap in (usd("99.00"), None, usd("5.00", "EUR")):
        asked = await gql.data(SET, {"input": {"id": rule, "budgetCap": cap, "reason": "more"}},
                               as_user=s.author)  # fmt: skip
        assert asked["incentiveRuleBudgetSet"]["applied"] is False
        assert asked["incentiveRuleBudgetSet"]["budgetChange"]["status"] == "PENDING"
        assert await budget(db) == (10_00, "USD")
    lower = await gql.data(SET, {"input": {"id": rule, "budgetCap": usd("4.00")}},
                           as_user=s.author)  # fmt: skip
    assert lower["incentiveRuleBudgetSet"]["applied"] is True
    assert await budget(db) == (4_00, "USD")


@pytest.mark.parametrize("mutation", ["approve", "cancel", "set"])
async def test_who_may_loosen_a_budget_and_refusals_change_nothing(
    gql: GQL,
    db: Database,
    clock: OffsetClock,
    tenant: Tenant,
    other_tenant: Tenant,
    services: Services,
    mutation: str,
) -> None:
    """Anonymous: UNAUTHENTICATED; finance, channel manager and partner roles: FORBIDDEN;
    another vendor's admin: NOT_FOUND at `id`. None of them changes the budget, the pending
    change or the audit. Partners do not see the rule, nor its pending change."""
    s = await shop(db, clock, tenant, services)
    rule = await governed(db, clock, s)
    asked = await gql.data(SET, {"input": {"id": rule, "budgetCap": usd("50.00"),
                                           "reason": "more"}}, as_user=s.author)  # fmt: skip
    change = asked["incentiveRuleBudgetSet"]["budgetChange"]["id"]
    doc = {"approve": APPROVE, "cancel": CANCEL, "set": SET}[mutation]
    variables = {"input": {"id": change, "reason": "x"}}
    if mutation == "set":
        variables = {"input": {"id": rule, "budgetCap": None, "reason": "x"}}
    before = await everything(db)
    assert error_codes(await gql(doc, variables)) == ["UNAUTHENTICATED"]
    for role in (Role.FINANCE, Role.CHANNEL_MANAGER, Role.PARTNER_ADMIN, Role.PARTNER_REP):
        refused = await gql(doc, variables, as_user=tenant.user(role))
        assert error_codes(refused) == ["FORBIDDEN"], role
        assert refused["data"] is None, role
    foreign = await gql.data(doc, variables, as_user=other_tenant.user(Role.VENDOR_ADMIN))
    assert errors_of(foreign) == [("NOT_FOUND", "id")]
    assert await everything(db) == before
    for role in (Role.PARTNER_ADMIN, Role.PARTNER_REP):
        seen = await gql(RULE, {"id": rule}, as_user=tenant.user(role))
        assert (seen.get("data") or {}).get("incentiveRule") is None, role
    staff = await gql.data(RULE, {"id": rule}, as_user=tenant.user(Role.CHANNEL_MANAGER))
    assert staff["incentiveRule"]["pendingBudgetChange"]["id"] == change


async def test_a_key_with_no_known_maker_asks_for_nothing_four_eyes_decide(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    """A key made with a key before they recorded their maker's maker (1aaa23d) has none:
    a change asked with it had no requester, and the admin behind it approved it herself.
    Such a key asks for no loosening (PERSON_REQUIRED) and drafts no version; nothing is
    pending, the budget is unchanged."""
    s = await shop(db, clock, tenant, services)
    rule = await governed(db, clock, s)
    make = 'mutation { apiKeyCreate(input: {name: "old", role: VENDOR_ADMIN}) { secret } }'
    secret = (await gql.data(make, as_user=s.author))["apiKeyCreate"]["secret"]
    async with db.transaction() as session:  # as a key made with a key was stored
        for key in await session.exec(select(ApiKey)):
            key.created_by_id = None
            session.add(key)
    asked = await gql(SET, {"input": {"id": rule, "budgetCap": None, "reason": "script"}},
                      token=secret)  # fmt: skip
    assert errors_of(asked["data"]) == [("PERSON_REQUIRED", None)]
    assert await changes(db) == []
    drafted = await gql(CREATE, {"input": rule_input(name="Keyed")}, token=secret)
    assert errors_of(drafted["data"]) == [("PERSON_REQUIRED", None)]
    assert await budget(db) == (20_00, "USD")


def rule_reads(sent: list[str]) -> list[str]:
    """The statements that read rules, versions or budget changes: the app's background
    loops (the outbox's lease, clock triggers) send others meanwhile, counted or not."""
    return [statement for statement in sent if "FROM incentive_rule" in statement]


RULES_PAGE = """query($first: Int!) { incentiveRules(first: $first) { edges { node { name
  pendingBudgetChange { status toCap { amountMinor } requestedById } } } } }"""


async def test_a_page_of_rules_reads_their_pending_changes_in_one_query(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    """A list of rules each with a pending loosening: one query for all their pending
    changes, and a page of five costs the statements a page of one does."""
    admin = tenant.user(Role.VENDOR_ADMIN)

    async def make(session: Any) -> None:
        for n in range(5):
            rule = await rules.create_rule(
                session, principal_of(admin), clock, name=f"Rule {n}", condition=GROWTH,
                actions=[Action(ActionKind.RECOMMEND, title="Go", text="Sell more.")],
                budget_cap_minor=10_00, currency="USD",
            )  # fmt: skip
            await rules.set_budget(
                session, principal_of(admin), clock, rule_id=rule.id,
                budget_cap_minor=(n + 2) * 10_00, reason=f"more for {n}",
            )  # fmt: skip

    await es.tx(db, make)
    # What the drafts and requests tell the other admins, not counted with the page.
    await settle(services)
    await gql.data(RULES_PAGE, {"first": 1}, as_user=admin)  # the caller, cached
    sent: dict[int, list[str]] = {}
    for first in (1, 5):
        with sql_statements(db) as seen:
            page = await gql.data(RULES_PAGE, {"first": first}, as_user=admin)
        sent[first] = list(seen)
        shown = [e["node"]["pendingBudgetChange"] for e in page["incentiveRules"]["edges"]]
        assert len(shown) == first
        assert all(c["status"] == "PENDING" for c in shown)
        assert all(c["requestedById"] == gid("User", admin.id) for c in shown)
    assert sorted(c["toCap"]["amountMinor"] for c in shown) == [2_000, 3_000, 4_000, 5_000, 6_000]
    assert sum("FROM incentive_rule_budget_change" in s for s in sent[5]) == 1
    assert len(rule_reads(sent[5])) == len(rule_reads(sent[1])), (sent[1], sent[5])


VERSIONS_PAGE = """query($first: Int!) { incentiveRules(first: $first) { edges { node { name
  activeVersion { number status condition } versions { number status createdById } } } } }"""


async def test_a_page_of_rules_reads_their_versions_in_one_query_each(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, other_tenant: Tenant,
    services: Services,
) -> None:  # fmt: skip
    """A list of rules, each with an approved version and a draft of the next: one query
    for all their active versions and one for all their versions, so a page of five costs
    the statements a page of one does. Who may read them is unchanged: another vendor's
    admin reads none of them, a partner none at all."""
    s = await shop(db, clock, tenant, services)

    async def make(session: Any) -> None:
        for n in range(5):
            rule = await rules.create_rule(
                session, principal_of(s.author), clock, name=f"Rule {n}", condition=GROWTH,
                actions=[Action(ActionKind.RECOMMEND, title="Go", text="Sell more.")],
            )  # fmt: skip
            [first] = await _versions(session, rule)
            await rules.approve(
                session, principal_of(s.approver), clock, version_id=first, reason="ok"
            )
            await rules.draft_version(
                session, principal_of(s.author), clock, rule_id=rule.id,
                condition=f"revenue_7d > {n}", actions=[Action(ActionKind.RECOMMEND,
                title="Go", text="Sell more.")],
            )  # fmt: skip

    await es.tx(db, make)
    await settle(services)  # the approvals' evaluations, not counted with the page
    await gql.data(VERSIONS_PAGE, {"first": 1}, as_user=s.author)  # the caller, cached
    sent: dict[int, list[str]] = {}
    for first in (1, 5):
        with sql_statements(db) as seen:
            page = await gql.data(VERSIONS_PAGE, {"first": first}, as_user=s.author)
        sent[first] = list(seen)
        shown = [e["node"] for e in page["incentiveRules"]["edges"]]
        assert len(shown) == first
        for node in shown:
            assert node["activeVersion"] == {"number": 1, "status": "APPROVED",
                                             "condition": GROWTH}  # fmt: skip
            assert [(v["number"], v["status"]) for v in node["versions"]] == [
                (1, "APPROVED"), (2, "DRAFT")
            ]  # fmt: skip
            assert {v["createdById"] for v in node["versions"]} == {gid("User", s.author.id)}
    assert sum("FROM incentive_rule_version" in q for q in sent[5]) == 2, sent[5]
    assert len(rule_reads(sent[5])) == len(rule_reads(sent[1])), (sent[1], sent[5])
    # The same page read by another vendor's admin and by a partner: nothing of it.
    foreign = other_tenant.user(Role.VENDOR_ADMIN)
    other = await gql.data(VERSIONS_PAGE, {"first": 5}, as_user=foreign)
    assert other["incentiveRules"]["edges"] == []
    assert error_codes(
        await gql(VERSIONS_PAGE, {"first": 5}, as_user=tenant.user(Role.PARTNER_ADMIN, 0))
    ) == ["FORBIDDEN"]  # fmt: skip


async def test_a_replaced_change_records_who_replaced_it_when_and_why(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    """A pending loosening replaced by another admin's request, then one replaced by a
    tightening: each SUPERSEDED change is decided by the one who replaced it, at that
    moment, with the reason of the request or tightening that replaced it (it recorded
    only the moment; then a new request's reason was left out)."""
    s = await shop(db, clock, tenant, services)
    rule = await governed(db, clock, s)

    async def decided() -> list[tuple[str, Any, Any, str]]:
        async with db.session() as session:
            rows = await session.exec(
                select(IncentiveRuleBudgetChange).order_by(IncentiveRuleBudgetChange.requested_at)
            )
            return [(c.status.value, c.decided_by_id, c.decided_at, c.decision_reason)
                    for c in rows]  # fmt: skip

    await gql.data(SET, {"input": {"id": rule, "budgetCap": usd("50.00"), "reason": "more"}},
                   as_user=s.author)  # fmt: skip
    clock.advance(timedelta(minutes=5))
    replaced_at = clock.now()
    await gql.data(SET, {"input": {"id": rule, "budgetCap": usd("80.00"), "reason": "most"}},
                   as_user=s.approver)  # fmt: skip
    clock.advance(timedelta(minutes=5))
    tightened_at = clock.now()
    tightened = await gql.data(
        SET, {"input": {"id": rule, "budgetCap": usd("10.00"), "reason": "over budget"}},
        as_user=s.author,
    )  # fmt: skip
    assert tightened["incentiveRuleBudgetSet"]["applied"] is True
    assert await decided() == [
        ("SUPERSEDED", s.approver.id, replaced_at, "most"),
        ("SUPERSEDED", s.author.id, tightened_at, "over budget"),
    ]
