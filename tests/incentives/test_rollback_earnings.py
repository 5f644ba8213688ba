"""Rolling a rule version back with ``reverseEarnings``: what its rate overlays paid is
taken back — reversed where not yet paid out, clawed back from the next payout where its
statement was paid — each entry explained to the partner; without it (the default) what
was earned stays. Through GraphQL; the repeat through the earnings service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import col, select

from earnings import payouts
from earnings.models import EarningEntry, RateOverlay
from earnings.withdrawals import withdraw_overlay_earnings
from incentives.actions import SOURCE, Action, ActionKind
from infra.audit import AuditEntry
from infra.clock import OffsetClock
from infra.db import Database
from partners.roles import Role
from schema.context import Services
from tests.earnings import scenarios as es
from tests.factories import Tenant, gid, reverse_sale
from tests.incentives.rules import active_rule, daily
from tests.incentives.scenarios import GROWTH, T0, settle, shop
from tests.incentives.test_actions import ENTRIES, nodes
from tests.incentives.test_rule_life import APPROVE, DRAFT, ROLL_BACK
from tests.support import GQL

JANUARY = {"start": "2027-01-01T00:00:00+00:00", "end": "2027-02-01T00:00:00+00:00"}
SUMMARY = """query($period: EarningsPeriodInput) {
  earnings(period: $period) { explanations { kind text } } }"""
MILD = "days_since_last_sale != null && days_since_last_sale > 30"  # fires for nobody here


async def entries(gql: GQL, tenant: Tenant) -> list[dict[str, Any]]:
    partner = tenant.user(Role.PARTNER_ADMIN, 0)
    return [
        e
        for kind in ("RATE_OVERLAY", "CLAWBACK")
        for e in nodes(await gql.data(ENTRIES, {"kind": kind}, as_user=partner), "earningEntries")
    ]


async def test_a_rollback_reverses_unpaid_overlay_money_and_claws_back_paid(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    s = await shop(db, clock, tenant, services)
    await es.tax_form(db, clock, tenant, 0)  # (so December's statement can be paid)
    # Two rules, each at version 1 (mild) then version 2: +2 points for 60 days.
    rules = {}
    for name in ("Kept", "Taken"):
        rule = await active_rule(db, clock, s, name=name, condition=MILD, actions=[
            Action(ActionKind.RECOMMEND, title="Sell again", text="It has been a while.")
        ])  # fmt: skip
        drafted = await gql.data(DRAFT, {"input": {
            "ruleId": gid("IncentiveRule", rule.id), "condition": GROWTH, "period": "MONTH",
            "actions": [{"kind": "RATE_OVERLAY", "programId": s.gid("base"), "deltaBp": 200,
                         "days": 60}],
        }}, as_user=s.author)  # fmt: skip
        version = drafted["incentiveRuleDraft"]["version"]
        ok = await gql.data(APPROVE, {"input": {"versionId": version["id"], "reason": "push"}},
                            as_user=s.approver)  # fmt: skip
        assert ok["incentiveRuleApprove"]["userErrors"] == []
        rules[name] = rule
    assert await daily(db, clock) == 2  # partner 0, once per rule

    # December: a sale pays each overlay 2.00; the statement is generated and paid.
    clock.freeze(T0 + timedelta(hours=1))
    await es.sale(db, clock, tenant, 100_00, partner_index=0)
    await settle(services)
    clock.freeze(datetime(2027, 1, 2, 9, 0, tzinfo=UTC))
    [december] = [
        st
        for st in await es.generate(db, clock, tenant, services.claim_signals)
        if st.partner_id == tenant.partners[0].id
    ]
    finance = tenant.principal(Role.FINANCE)
    await es.tx(db, lambda x: payouts.approve(x, finance, clock, statement_id=december.id))
    await es.tx(db, lambda x: payouts.mark_paid(x, finance, clock, statement_id=december.id,
                                                reference="WIRE-1"))  # fmt: skip
    # January: another sale pays each overlay 3.00, not paid out yet.
    january = await es.sale(db, clock, tenant, 150_00, partner_index=0)
    await settle(services)
    before = await entries(gql, tenant)
    assert sorted(e["amount"]["amountMinor"] for e in before) == [2_00, 2_00, 3_00, 3_00]

    # The default: what "Kept" paid stays; only its overlay ends.
    clock.advance(timedelta(hours=1))
    kept = await gql.data(ROLL_BACK, {"input": {
        "id": gid("IncentiveRule", rules["Kept"].id), "toVersion": 1, "reason": "Wrong"
    }}, as_user=s.author)  # fmt: skip
    assert kept["incentiveRuleRollBack"]["userErrors"] == []
    assert len(await entries(gql, tenant)) == 4

    # reverseEarnings: what "Taken" paid is taken back.
    taken = await gql.data(ROLL_BACK, {"input": {
        "id": gid("IncentiveRule", rules["Taken"].id), "toVersion": 1, "reason": "Wrong",
        "reverseEarnings": True,
    }}, as_user=s.author)  # fmt: skip
    assert taken["incentiveRuleRollBack"]["userErrors"] == []
    await settle(services)
    new = [e for e in await entries(gql, tenant) if "withdrawn_overlay_id" in e["inputs"]]
    by_amount = {e["amount"]["amountMinor"]: e for e in new}
    assert sorted(by_amount) == [-3_00, -2_00]
    unpaid, paid = by_amount[-3_00], by_amount[-2_00]
    # Not yet paid (January's): reversed, on the overlay's own line.
    assert unpaid["rule"] == (
        "Partner Rewards: the incentive overlay +2% credited on 2 January 2027 (3.00 USD) "
        "reversed before it was paid out: the promotion was withdrawn"
    )
    assert unpaid["inputs"]["paid"] is False
    # Paid (December's statement): clawed back from the next payout.
    assert paid["rule"] == (
        "Partner Rewards: clawback of the incentive overlay +2% credited on 5 December 2026 "
        "(2.00 USD), paid in the December 2026 statement: the promotion was withdrawn; taken "
        "from your next payout"
    )
    assert paid["inputs"]["paid"] is True
    assert paid["inputs"]["statement_id"] == str(december.id)
    # Never the rule's name; the partner's summary explains it in a sentence.
    assert "Taken" not in str(new)
    summary = await gql.data(SUMMARY, {"period": JANUARY},
                             as_user=tenant.user(Role.PARTNER_ADMIN, 0))  # fmt: skip
    texts = {e["kind"]: e["text"] for e in summary["earnings"]["explanations"]}
    assert texts["OVERLAY_WITHDRAWN"] == (
        "An incentive promotion was withdrawn: 3.00 USD of incentive overlay earnings not yet "
        "paid out was reversed and 2.00 USD already paid was clawed back from your next payout."
    )
    assert "CLAWBACK" not in texts  # not told as a refunded sale
    # The audit entry says what was taken back.
    async with db.session() as session:
        [entry] = list(await session.exec(
            select(AuditEntry).where(
                AuditEntry.action == "incentive_rule.rolled_back",
                AuditEntry.entity_id == str(rules["Taken"].id),
            )
        ))  # fmt: skip
        overlays = list(
            await session.exec(
                select(RateOverlay.id).where(
                    RateOverlay.source == SOURCE, RateOverlay.source_id == rules["Taken"].id
                )
            )
        )
    assert entry.after is not None
    assert (entry.after["earnings_reversed_minor"], entry.after["earnings_clawed_back_minor"]) == (
        -3_00, -2_00
    )  # fmt: skip
    # Taken back again: nothing is outstanding, nothing is written.
    async with db.transaction() as session:
        again = await withdraw_overlay_earnings(
            session, clock, overlay_ids=overlays, why="the promotion was withdrawn"
        )
    assert again.entries == []
    async with db.session() as session:
        count = len(list(await session.exec(
            select(EarningEntry.id).where(col(EarningEntry.line_key).like("withdrawn:%"))
        )))  # fmt: skip
    assert count == 2
    # The January sale refunded afterwards: "Kept"'s overlay entry is clawed back as usual,
    # "Taken"'s, already taken back whole, is not taken twice.
    await reverse_sale(db, clock, tenant, january)
    await settle(services)
    partner = tenant.user(Role.PARTNER_ADMIN, 0)
    refund = [
        e for e in nodes(await gql.data(ENTRIES, {"kind": "CLAWBACK"}, as_user=partner),
                         "earningEntries")
        if e["sourceEventId"] != new[0]["sourceEventId"] and "original_kind" in e["inputs"]
        and e["inputs"]["original_kind"] == "RATE_OVERLAY"
    ]  # fmt: skip
    assert [e["amount"]["amountMinor"] for e in refund] == [-3_00]
