"""Rolling a rule version back with ``reverseEarnings``: what its rate overlays paid is
taken back — reversed when booked this month (no statement has it yet), clawed back in
this month's statement when an earlier month's statement pays it (paid or not yet) — each
entry explained to the partner; without it (the default) what was earned stays. Through
GraphQL; the repeat through the earnings service."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import col, select

from earnings import payouts
from earnings.models import EarningEntry, Program, RateOverlay
from earnings.overlays import add_overlay
from earnings.withdrawals import withdraw_overlay_earnings
from incentives.actions import SOURCE, Action, ActionKind
from incentives.models import IncentiveRule, Period, RuleFiring
from infra.audit import AuditEntry
from infra.clock import Clock, OffsetClock
from infra.db import Database
from partners.roles import Role
from schema.context import Services
from tests.earnings import scenarios as es
from tests.factories import Tenant, gid, reverse_sale
from tests.incentives.rules import active_rule, daily
from tests.incentives.scenarios import GROWTH, T0, Shop, settle, shop
from tests.incentives.test_actions import ENTRIES, nodes
from tests.incentives.test_rule_life import APPROVE, DRAFT, ROLL_BACK
from tests.support import GQL

JANUARY = {"start": "2027-01-01T00:00:00+00:00", "end": "2027-02-01T00:00:00+00:00"}
SUMMARY = """query($period: EarningsPeriodInput) {
  earnings(period: $period) { explanations { kind text } } }"""
ANY_REVENUE = "revenue_30d != null && revenue_30d > 0"
MILD = "days_since_last_sale != null && days_since_last_sale > 30"  # fires for nobody here


async def entries(gql: GQL, tenant: Tenant) -> list[dict[str, Any]]:
    partner = tenant.user(Role.PARTNER_ADMIN, 0)
    return [
        e
        for kind in ("RATE_OVERLAY", "CLAWBACK")
        for e in nodes(await gql.data(ENTRIES, {"kind": kind}, as_user=partner), "earningEntries")
    ]


async def mild_rule(db: Database, clock: OffsetClock, s: Shop, name: str = "Push") -> IncentiveRule:
    """A rule whose version 1 fires for nobody here and only recommends."""
    return await active_rule(db, clock, s, name=name, condition=MILD, actions=[
        Action(ActionKind.RECOMMEND, title="Sell again", text="It has been a while.")
    ])  # fmt: skip


async def approve_overlay_version(
    gql: GQL, s: Shop, rule: IncentiveRule, condition: str, reason: str
) -> None:
    """The rule's next version, approved: on ``condition``, +2% on the base program for 60
    days."""
    drafted = await gql.data(DRAFT, {"input": {
        "ruleId": gid("IncentiveRule", rule.id), "condition": condition, "period": "MONTH",
        "actions": [{"kind": "RATE_OVERLAY", "programId": s.gid("base"), "deltaBp": 200,
                     "days": 60}],
    }}, as_user=s.author)  # fmt: skip
    ok = await gql.data(APPROVE, {"input": {
        "versionId": drafted["incentiveRuleDraft"]["version"]["id"], "reason": reason
    }}, as_user=s.approver)  # fmt: skip
    assert ok["incentiveRuleApprove"]["userErrors"] == []


async def roll_back(gql: GQL, s: Shop, rule: IncentiveRule, *, reverse: bool) -> None:
    """Roll the rule back to version 1 (with ``reverseEarnings`` when ``reverse``)."""
    extra = {"reverseEarnings": True} if reverse else {}
    back = await gql.data(ROLL_BACK, {"input": {
        "id": gid("IncentiveRule", rule.id), "toVersion": 1, "reason": "Wrong", **extra,
    }}, as_user=s.author)  # fmt: skip
    assert back["incentiveRuleRollBack"]["userErrors"] == []


async def v2_extending_a_racing_v1_overlay(
    gql: GQL, services: Services, s: Shop, tenant: Tenant, rule: IncentiveRule
) -> RateOverlay:
    """Version 2 approved (+2% for 60 days on any revenue), and v1's overlay that a v1
    firing racing the approval placed; v2's evaluation at its activation then extends it.
    The app's dispatcher is held meanwhile: its run of the activation must come after the
    racing overlay, as in the race (else v2 places one of its own)."""
    async with services.outbox.paused():
        await approve_overlay_version(gql, s, rule, ANY_REVENUE, "longer")
        v1_overlay = await racing_v1_overlay(services.db, services.clock, s, tenant, rule)
    await settle(services)
    return v1_overlay


async def racing_v1_overlay(
    db: Database, clock: Clock, s: Shop, tenant: Tenant, rule: IncentiveRule
) -> RateOverlay:
    """A +2% overlay for 30 days under the rule's source, as a v1 firing racing v2's
    approval places it."""

    async def place(session: Any) -> RateOverlay:
        program = await session.get(Program, s.base_program_id)
        placed = await add_overlay(
            session, clock, program=program, partner_id=tenant.partners[0].id, delta_bp=200,
            ends_at=T0 + timedelta(days=30), source=SOURCE, source_id=rule.id, label="Push",
        )  # fmt: skip
        await session.flush()
        return placed

    return await es.tx(db, place)


async def test_a_rollback_reverses_unpaid_overlay_money_and_claws_back_paid(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    s = await shop(db, clock, tenant, services)
    await es.tax_form(db, clock, tenant, 0)  # (so December's statement can be paid)
    # Two rules, each at version 1 (mild) then version 2: +2 points for 60 days.
    rules = {}
    for name in ("Kept", "Taken"):
        rules[name] = await mild_rule(db, clock, s, name)
        await approve_overlay_version(gql, s, rules[name], GROWTH, "push")
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
    await roll_back(gql, s, rules["Kept"], reverse=False)
    assert len(await entries(gql, tenant)) == 4

    # reverseEarnings: what "Taken" paid is taken back.
    await roll_back(gql, s, rules["Taken"], reverse=True)
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


async def test_rolling_back_takes_back_only_what_the_replaced_version_placed(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    """v1 places +2% for 60 days; v2, approved on day 20, fires. Approving v2 ended v1's
    overlay, so v2 places its own (it does not extend v1's): rolling back to v1 with
    reverseEarnings takes back what v2's overlay paid, never what v1's paid before."""
    s = await shop(db, clock, tenant, services)
    overlay = [Action(ActionKind.RATE_OVERLAY, program_id=s.base_program_id, delta_bp=200,
                      days=60)]  # fmt: skip
    rule = await active_rule(db, clock, s, name="Push", condition=GROWTH, actions=overlay,
                             period=Period.MONTH)  # fmt: skip
    assert await daily(db, clock) == 1
    clock.freeze(T0 + timedelta(hours=1))
    await es.sale(db, clock, tenant, 100_00, partner_index=0)  # under v1: 2.00
    await settle(services)
    clock.freeze(T0 + timedelta(days=20))
    await approve_overlay_version(gql, s, rule, ANY_REVENUE, "longer")
    await daily(db, clock)
    async with db.session() as session:
        firings = list(await session.exec(
            select(RuleFiring).where(RuleFiring.rule_id == rule.id,
                                     RuleFiring.partner_id == tenant.partners[0].id)
            .order_by(col(RuleFiring.fired_at))
        ))  # fmt: skip
        [v1_overlay, v2_overlay] = [
            await session.get(RateOverlay, uuid.UUID(f.outcomes[0]["overlay_id"])) for f in firings
        ]
    assert v1_overlay is not None
    assert v2_overlay is not None
    assert v1_overlay.id != v2_overlay.id
    assert "extended" not in firings[1].outcomes[0]
    assert v1_overlay.ended_at == T0 + timedelta(days=20)  # ended when v2 was approved
    clock.freeze(T0 + timedelta(days=21))
    await es.sale(db, clock, tenant, 150_00, partner_index=0)  # under v2: 3.00
    await settle(services)
    clock.freeze(T0 + timedelta(days=22))
    await roll_back(gql, s, rule, reverse=True)
    await settle(services)
    new = [e for e in await entries(gql, tenant) if "withdrawn_overlay_id" in e["inputs"]]
    assert [e["amount"]["amountMinor"] for e in new] == [-3_00]
    assert new[0]["inputs"]["withdrawn_overlay_id"] == str(v2_overlay.id)


@pytest.mark.parametrize("december", ["APPROVED", "HELD", None])
async def test_an_earlier_months_entry_not_yet_paid_is_taken_back_in_this_months_statement(
    gql: GQL,
    db: Database,
    clock: OffsetClock,
    tenant: Tenant,
    services: Services,
    december: str | None,
) -> None:
    """December's statement (approved, held, or not made yet) pays December's overlay
    entry; the withdrawal booked in January is in January's statement: the partner is
    told it is taken back there, not that it was reversed before it was paid out."""
    s = await shop(db, clock, tenant, services)
    if december != "HELD":
        await es.tax_form(db, clock, tenant, 0)  # (else December's statement is held)
    rule = await mild_rule(db, clock, s)
    await approve_overlay_version(gql, s, rule, GROWTH, "push")
    assert await daily(db, clock) == 1
    clock.freeze(T0 + timedelta(hours=1))
    await es.sale(db, clock, tenant, 100_00, partner_index=0)  # 2.00 in December
    await settle(services)
    clock.freeze(datetime(2027, 1, 2, 9, 0, tzinfo=UTC))
    if december is not None:
        [statement] = [
            st
            for st in await es.generate(db, clock, tenant, services.claim_signals)
            if st.partner_id == tenant.partners[0].id
        ]
        assert statement.status.value == ("HELD" if december == "HELD" else "PENDING")
        if december == "APPROVED":
            finance = tenant.principal(Role.FINANCE)
            await es.tx(db, lambda x: payouts.approve(x, finance, clock,
                                                      statement_id=statement.id))  # fmt: skip
    await roll_back(gql, s, rule, reverse=True)
    await settle(services)
    partner = tenant.user(Role.PARTNER_ADMIN, 0)
    [withdrawn] = [
        e
        for e in nodes(await gql.data(ENTRIES, {"kind": "CLAWBACK"}, as_user=partner),
                       "earningEntries")
        if "withdrawn_overlay_id" in e["inputs"]
    ]  # fmt: skip
    assert withdrawn["amount"]["amountMinor"] == -2_00
    assert withdrawn["rule"] == (
        "Partner Rewards: clawback of the incentive overlay +2% credited on 5 December 2026 "
        "(2.00 USD), in the December 2026 statement: the promotion was withdrawn; taken back "
        "in your January 2027 statement"
    )
    assert withdrawn["inputs"]["paid"] is False
    assert withdrawn["inputs"]["later_statement"] is True
    summary = await gql.data(SUMMARY, {"period": JANUARY}, as_user=partner)
    texts = {e["kind"]: e["text"] for e in summary["earnings"]["explanations"]}
    assert texts["OVERLAY_WITHDRAWN"] == (
        "An incentive promotion was withdrawn: 2.00 USD on an earlier statement not yet paid "
        "out was taken back in this period's statement (the earlier statement still pays it)."
    )


async def test_a_rollback_takes_back_only_the_extension_of_an_earlier_versions_overlay(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    """Every version of a rule places under the rule's source, so a firing of v2 extends an
    overlay of v1 still running (approval ends v1's effects, but a v1 firing racing the
    approval places one after). Rolling back to v1 with reverseEarnings takes back only
    what the extension paid (sales after v1's end), and v1's overlay would have ended
    then: it ends now, not earlier or later."""
    s = await shop(db, clock, tenant, services)
    rule = await mild_rule(db, clock, s)
    v1_overlay = await v2_extending_a_racing_v1_overlay(gql, services, s, tenant, rule)
    clock.freeze(T0 + timedelta(hours=1))
    await es.sale(db, clock, tenant, 100_00, partner_index=0)  # v1's: 2.00
    await settle(services)
    clock.freeze(T0 + timedelta(days=1))
    await daily(db, clock)  # nothing more: v2 fired at its activation, extending it to day 60
    async with db.session() as session:
        [firing] = list(await session.exec(
            select(RuleFiring).where(RuleFiring.rule_id == rule.id,
                                     RuleFiring.partner_id == tenant.partners[0].id)
        ))  # fmt: skip
    [outcome] = firing.outcomes
    assert outcome["overlay_id"] == str(v1_overlay.id)
    assert outcome["extended"] is True
    assert outcome["before"] == (T0 + timedelta(days=30)).isoformat()
    clock.freeze(T0 + timedelta(days=2))
    await es.sale(db, clock, tenant, 150_00, partner_index=0)  # within v1's 30 days: 3.00
    await settle(services)
    clock.freeze(T0 + timedelta(days=35))
    await es.sale(db, clock, tenant, 50_00, partner_index=0)  # the extension's: 1.00
    await settle(services)
    clock.freeze(T0 + timedelta(days=36))
    await roll_back(gql, s, rule, reverse=True)
    await settle(services)
    new = [e for e in await entries(gql, tenant) if "withdrawn_overlay_id" in e["inputs"]]
    assert [e["amount"]["amountMinor"] for e in new] == [-1_00]
    async with db.session() as session:
        after = await session.get(RateOverlay, v1_overlay.id)
    assert after is not None
    assert after.ended_at == T0 + timedelta(days=36)  # past v1's end: ends now


async def test_a_rollback_gives_an_extended_overlay_back_its_earlier_end(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    """As above, rolled back before v1's end: the overlay runs on to v1's end."""
    s = await shop(db, clock, tenant, services)
    rule = await mild_rule(db, clock, s)
    v1_overlay = await v2_extending_a_racing_v1_overlay(gql, services, s, tenant, rule)
    clock.freeze(T0 + timedelta(days=1))
    await daily(db, clock)  # nothing more: v2 extended it to day 60 at its activation
    clock.freeze(T0 + timedelta(days=2))
    await roll_back(gql, s, rule, reverse=True)
    async with db.session() as session:
        after = await session.get(RateOverlay, v1_overlay.id)
    assert after is not None
    assert (after.ends_at, after.ended_at) == (T0 + timedelta(days=30), None)
