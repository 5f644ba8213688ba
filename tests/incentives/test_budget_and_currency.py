"""A rule's budget is spent within a run (not only between runs), counts its own currency
only, and an overlay on a program paying in another currency is refused; the partner reads
the signals' money in the signals' currency, whatever the rule's."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlmodel import func, select

from earnings import overlays, programs
from earnings.models import ProgramKind
from earnings.programs import BaseRate, Rules
from incentives import repository
from incentives.actions import SOURCE, Action, ActionKind
from incentives.models import IncentiveRule, IncentiveRuleVersion, Period, RuleFiring
from infra.clock import OffsetClock
from infra.db import Database
from infra.ids import new_id
from partners.group_models import PartnerGroupMembership
from partners.roles import Role
from schema.context import Services
from tests.earnings import scenarios as es
from tests.factories import Tenant, gid
from tests.incentives.rules import active_rule, daily
from tests.incentives.scenarios import GROWTH, settle, shop
from tests.incentives.test_actions import FIRINGS, nodes
from tests.incentives.test_bad_input_and_roles import BUDGET, CREATE, rule_input
from tests.incentives.test_budget_four_eyes import APPROVE, SET
from tests.support import GQL


async def euro_program(
    db: Database, clock: OffsetClock, tenant: Tenant, *, name: str = "Euro Rewards", **extra: Any
) -> Any:
    """A program paying 5% in euros (the shop's programs pay in dollars), from now."""

    async def create(session: Any) -> Any:
        return await programs.create_program(
            session, tenant.principal(Role.VENDOR_ADMIN), clock, name=name, currency="EUR",
            rules=Rules(base_rates=(BaseRate(rate_bp=500),)), effective_from=clock.now(),
            **extra,
        )  # fmt: skip

    return await es.tx(db, create)


async def test_a_run_stops_rate_actions_once_its_estimates_spend_the_budget(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    s = await shop(db, clock, tenant, services)
    # Both partners qualify; either one's estimate (1.49 or 0.33 USD) spends the 0.30 cap.
    await active_rule(db, clock, s, condition="revenue_30d > 0", period=Period.DAY,
                      budget_cap_minor=30, actions=[
        Action(ActionKind.RATE_OVERLAY, days=1, program_id=s.base_program_id, delta_bp=200)
    ])  # fmt: skip
    dry_run = """query($v: ID!) { incentiveRuleDryRun(versionId: $v) { firing
         estimatedCost { amountMinor } partners { actions { estimatedCost { amountMinor } } }
       } }"""

    async def dry_costs() -> list[int]:
        dry = await gql.data(dry_run, {"v": await _version_gid(db)}, as_user=s.author)
        return sorted(
            a["estimatedCost"]["amountMinor"]
            for p in dry["incentiveRuleDryRun"]["partners"]
            for a in p["actions"]
        )

    # The dry run spends it the way the run will.
    costs = await dry_costs()
    assert len(costs) == 2
    assert costs[0] == 0
    assert costs[1] > 0
    assert await daily(db, clock) == 2
    firings = nodes(await gql.data(FIRINGS, as_user=s.author), "ruleFirings")
    assert sorted(str(f["outcomes"][0]["skipped"]) for f in firings) == [
        "BUDGET_REACHED", "None"
    ]  # fmt: skip
    # What the run committed stays spent: a dry run now places no rate action.
    assert await dry_costs() == [0, 0]


async def test_the_budget_stops_group_windows_its_groups_programs_pay_for(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    """A window into Boost (a bonus program pays its members) costs as an overlay does: the
    cap holds it too. Before, only overlays spent the budget, and a capped promotion rule
    (the shipped growth template is one) placed windows without limit."""
    s = await shop(db, clock, tenant, services)
    await active_rule(db, clock, s, condition="revenue_30d > 0", period=Period.DAY,
                      budget_cap_minor=30, actions=[
        Action(ActionKind.GROUP_WINDOW, days=1, group_id=s.boost_group_id)
    ])  # fmt: skip
    dry = """query($v: ID!) { incentiveRuleDryRun(versionId: $v) {
         partners { actions { skipped estimatedCost { amountMinor } } } } }"""
    run = await gql.data(dry, {"v": await _version_gid(db)}, as_user=s.author)
    actions = [a for p in run["incentiveRuleDryRun"]["partners"] for a in p["actions"]]
    assert sorted(str(a["skipped"]) for a in actions) == ["BUDGET_REACHED", "None"]
    assert await daily(db, clock) == 2
    firings = nodes(await gql.data(FIRINGS, as_user=s.author), "ruleFirings")
    assert sorted(str(f["outcomes"][0]["skipped"]) for f in firings) == [
        "BUDGET_REACHED", "None"
    ]  # fmt: skip
    async with db.session() as session:
        windows = await session.scalar(select(func.count()).select_from(PartnerGroupMembership))
        committed = await session.scalar(select(IncentiveRule.budget_committed_minor))
    assert windows == 1
    assert committed is not None
    assert committed > 0


async def _version_gid(db: Database) -> str:
    async with db.session() as session:
        [version] = list(await session.exec(select(IncentiveRuleVersion.id)))
    return gid("IncentiveRuleVersion", version)


async def test_what_a_rule_paid_counts_only_its_currency(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    s = await shop(db, clock, tenant, services)
    rule = await active_rule(db, clock, s, condition=GROWTH, actions=[
        Action(ActionKind.RATE_OVERLAY, days=30, program_id=s.base_program_id, delta_bp=150)
    ])  # fmt: skip
    assert await daily(db, clock) == 1
    clock.advance(timedelta(hours=1))
    await es.sale(db, clock, tenant, 200_00, partner_index=0)
    await settle(services)
    async with db.session() as session:
        paid = {
            currency: await overlays.paid_by_sources(
                session, source=SOURCE, source_ids=[rule.id], currency=currency
            )
            for currency in ("USD", "EUR")
        }
    assert paid == {"USD": 3_00, "EUR": 0}


async def rule_counts(db: Database) -> tuple[int, int]:
    async with db.session() as session:
        rules = await session.scalar(select(func.count()).select_from(IncentiveRule))
        versions = await session.scalar(select(func.count()).select_from(IncentiveRuleVersion))
        return int(rules or 0), int(versions or 0)


async def test_an_overlay_on_a_program_in_another_currency_is_refused(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    s = await shop(db, clock, tenant, services)

    eur = await euro_program(db, clock, tenant)
    overlay = {
        "kind": "RATE_OVERLAY",
        "programId": gid("EarningProgram", eur.program_id),
        "deltaBp": 100,
    }
    refused = await gql.data(CREATE, {"input": rule_input(
        actions=[overlay], budgetCap={"amount": "100.00", "currency": "USD"})},
        as_user=s.author)  # fmt: skip
    result = refused["incentiveRuleCreate"]
    assert result["rule"] is None
    assert [(e["code"], e["field"]) for e in result["userErrors"]] == [
        ("CURRENCY_MISMATCH", "actions.0.programId")
    ]
    assert await rule_counts(db) == (0, 0)
    # In the rule's currency it is accepted; moving the budget to EUR is then refused.
    usd = {**overlay, "programId": s.gid("base")}
    made = await gql.data(CREATE, {"input": rule_input(
        actions=[usd], budgetCap={"amount": "100.00", "currency": "USD"})},
        as_user=s.author)  # fmt: skip
    rule = made["incentiveRuleCreate"]["rule"]
    assert made["incentiveRuleCreate"]["userErrors"] == []
    moved = await gql.data(BUDGET, {"input": {"id": rule["id"], "budgetCap": {
        "amount": "100.00", "currency": "EUR"}}}, as_user=s.author)  # fmt: skip
    assert [(e["code"], e["field"]) for e in moved["incentiveRuleBudgetSet"]["userErrors"]] == [
        ("CURRENCY_MISMATCH", "budgetCap.currency")
    ]
    async with db.session() as session:
        [stored] = list(await session.exec(select(IncentiveRule)))
    assert (stored.currency, stored.budget_cap_minor) == ("USD", 100_00)


async def test_a_rule_without_a_budget_takes_its_overlays_currency(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    """No budget, no currency given: the rule is in the currency its overlay's program pays
    in (it was USD, and an overlay on a EUR program was refused for a budget nobody set)."""
    s = await shop(db, clock, tenant, services)

    eur = await euro_program(db, clock, tenant)
    overlay = {
        "kind": "RATE_OVERLAY",
        "programId": gid("EarningProgram", eur.program_id),
        "deltaBp": 100,
    }
    made = await gql.data(CREATE, {"input": rule_input(actions=[overlay])}, as_user=s.author)
    assert made["incentiveRuleCreate"]["userErrors"] == []
    recommend = {"kind": "RECOMMEND", "title": "Try the bundle", "text": "It sells."}
    other = await gql.data(CREATE, {"input": rule_input(name="Advice", actions=[recommend])},
                           as_user=s.author)  # fmt: skip
    assert other["incentiveRuleCreate"]["userErrors"] == []
    async with db.session() as session:
        stored = {r.name: r.currency for r in await session.exec(select(IncentiveRule))}
    # The other one: the vendor's first program's currency (the shop's is USD).
    assert stored == {"Growth kicker": "EUR", "Advice": "USD"}


async def test_removing_the_cap_keeps_the_rules_currency(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    """A null cap removes the cap and keeps the rule's currency (EUR here): it is no move to
    USD, which its EUR overlay would refuse. A real move (a USD cap) is refused at
    `budgetCap.currency`, the version and action at fault named in the message."""
    s = await shop(db, clock, tenant, services)

    eur = await euro_program(db, clock, tenant)
    made = await gql.data(CREATE, {"input": rule_input(
        budgetCap={"amount": "100.00", "currency": "EUR"}, actions=[
            {"kind": "RECOMMEND", "title": "Go", "text": "Sell more."},
            {"kind": "RATE_OVERLAY", "programId": gid("EarningProgram", eur.program_id),
             "deltaBp": 100}])}, as_user=s.author)  # fmt: skip
    assert made["incentiveRuleCreate"]["userErrors"] == []
    rule = made["incentiveRuleCreate"]["rule"]["id"]
    # Removing a cap loosens it: asked by one admin, approved by another.
    removed = await gql.data(SET, {"input": {"id": rule, "budgetCap": None, "reason": "open"}},
                             as_user=s.author)  # fmt: skip
    change = removed["incentiveRuleBudgetSet"]["budgetChange"]["id"]
    approved = await gql.data(APPROVE, {"input": {"id": change, "reason": "ok"}},
                              as_user=s.approver)  # fmt: skip
    assert approved["incentiveRuleBudgetChangeApprove"]["rule"] == {"budgetCap": None}
    async with db.session() as session:
        [stored] = list(await session.exec(select(IncentiveRule)))
    assert (stored.currency, stored.budget_cap_minor) == ("EUR", None)
    moved = await gql.data(BUDGET, {"input": {"id": rule, "budgetCap": {
        "amount": "100.00", "currency": "USD"}}}, as_user=s.author)  # fmt: skip
    [error] = moved["incentiveRuleBudgetSet"]["userErrors"]
    assert (error["code"], error["field"]) == ("CURRENCY_MISMATCH", "budgetCap.currency")
    assert error["message"] == (
        "Version 1, action 2: The program pays in EUR; the rule's budget is in USD."
    )
    async with db.session() as session:
        [stored] = list(await session.exec(select(IncentiveRule)))
    assert (stored.currency, stored.budget_cap_minor) == ("EUR", None)


async def test_a_windows_cost_counts_only_what_its_group_pays_in_the_rules_currency(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    """The budget is in the rule's currency: a bonus program paying the group in euros
    adds nothing to a USD rule's estimate (it added its basis points as if in dollars)."""
    s = await shop(db, clock, tenant, services)
    await active_rule(db, clock, s, condition="revenue_30d > 0", period=Period.DAY, actions=[
        Action(ActionKind.GROUP_WINDOW, days=7, group_id=s.boost_group_id)
    ])  # fmt: skip
    dry = """query($v: ID!) { incentiveRuleDryRun(versionId: $v) {
         estimatedCost { amountMinor currency } } }"""

    async def estimate() -> dict[str, Any]:
        data = await gql.data(dry, {"v": await _version_gid(db)}, as_user=s.author)
        return dict(data["incentiveRuleDryRun"]["estimatedCost"])

    in_dollars = await estimate()
    assert in_dollars["amountMinor"] > 0

    await euro_program(
        db, clock, tenant, name="Euro boost", kind=ProgramKind.BONUS,
        target_group_ids=[s.boost_group_id],
    )  # fmt: skip
    assert await estimate() == in_dollars


async def test_signal_money_is_explained_in_the_signals_currency_not_the_rules(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    """A rule overlaying a euro program has the currency EUR; the signals its condition read
    are in the vendor's signal currency (its base program's: USD), and the partner reads
    them so: before, "your revenue over the last 30 days was 2,240.00 EUR"."""
    s = await shop(db, clock, tenant, services)
    program = await euro_program(db, clock, tenant, name="Euro kicker", kind=ProgramKind.BONUS)
    await active_rule(db, clock, s, condition="revenue_30d >= 100000", actions=[
        Action(ActionKind.RATE_OVERLAY, days=30, program_id=program.program_id, delta_bp=100)
    ])  # fmt: skip
    await settle(services)
    await daily(db, clock)
    data = await gql.data(
        "{ incentiveExplanations { text } }", as_user=tenant.user(Role.PARTNER_ADMIN, 0)
    )
    [text] = [e["text"] for e in data["incentiveExplanations"]]
    assert "revenue over the last 30 days was 2,240.00 USD" in text, text
    # The overlay's estimated cost is in the rule's currency, listed or fetched by id
    # (node(id) gave it in USD whatever the rule's currency).
    outcomes = "outcomes { estimatedCost { currency } }"
    listed = await gql.data(f"{{ ruleFirings {{ edges {{ node {{ id {outcomes} }} }} }} }}",
                            as_user=s.author)  # fmt: skip
    [firing] = [e["node"] for e in listed["ruleFirings"]["edges"]]
    fetched = await gql.data(
        f"query($id: ID!) {{ node(id: $id) {{ ... on RuleFiring {{ {outcomes} }} }} }}",
        {"id": firing["id"]}, as_user=s.author,
    )  # fmt: skip
    assert (
        firing["outcomes"]
        == fetched["node"]["outcomes"]
        == [{"estimatedCost": {"currency": "EUR"}}]
    )


async def test_a_firing_recorded_without_its_signal_currency_reads_the_vendors(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    """Firings are append-only, so those written before firings kept their signal currency
    keep null: they are explained in the vendor's signal currency as it is now; a new
    firing records its own."""
    s = await shop(db, clock, tenant, services)
    await active_rule(db, clock, s, condition="revenue_30d >= 100000", actions=[
        Action(ActionKind.RECOMMEND, days=3, title="Bundle a care pack", text="Do it")
    ])  # fmt: skip
    await settle(services)
    await daily(db, clock)
    async with db.session() as session:
        [firing] = list(await session.exec(select(RuleFiring)))
        old = RuleFiring.model_validate(
            firing.model_dump() | {"id": new_id(), "signal_currency": None}
        )
        found = await repository.readings(session, [firing, old])
    assert firing.signal_currency == "USD"
    assert (found[firing.id].signal_currency, found[old.id].signal_currency) == ("USD", "USD")
