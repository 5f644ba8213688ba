"""Each action's effect, through the public interface: a rate overlay changes what the next
sale earns (the entry says so in partner words), a payout hold stops the payout, a group
window makes a group-targeted program pay and then stop; a budget cap stops further rate
actions."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx

from incentives.actions import Action, ActionKind
from incentives.models import Period, RuleDailyRun
from infra.clock import OffsetClock
from infra.db import Database
from partners.roles import Role
from schema.context import Services
from tests.earnings import scenarios as es
from tests.factories import Tenant, gid
from tests.forecasts.test_exports import export
from tests.incentives.rules import active_rule, daily
from tests.incentives.scenarios import GROWTH, T0, Shop, settle, shop
from tests.support import GQL

ENTRIES = """query($kind: EntryKind) { earningEntries(kind: $kind) { edges { node {
  amount { amountMinor } rule inputs sourceEventId } } } }"""
FIRINGS = """{ ruleFirings { edges { node { trigger partnerId
  outcomes { kind skipped estimatedCost { amountMinor } } } } } }"""


def nodes(data: dict[str, Any], field: str) -> list[dict[str, Any]]:
    return [e["node"] for e in data[field]["edges"]]


async def programs_read(gql: GQL, s: Shop, user: Any) -> tuple[list[str], bool]:
    """The programs the user lists, and whether it reads the Boost program by its id."""
    listed = await gql.data("{ earningPrograms { edges { node { name } } } }", as_user=user)
    node = await gql.data(
        "query($id: ID!) { node(id: $id) { id } }", {"id": s.gid("boost")}, as_user=user
    )
    return [n["name"] for n in nodes(listed, "earningPrograms")], node["node"] is not None


async def test_an_overlay_changes_what_the_next_sale_earns_in_partner_words(
    gql: GQL,
    client: httpx.AsyncClient,
    db: Database,
    clock: OffsetClock,
    tenant: Tenant,
    services: Services,
) -> None:
    s = await shop(db, clock, tenant, services)
    # Today's daily run counts as done: the app's own daily loop would otherwise evaluate
    # the rule as soon as it is active (partner 0 grew already) and race the sale below.
    async with db.transaction() as session:
        session.add(RuleDailyRun(
            vendor_id=tenant.vendor.id, day=clock.now().date().isoformat(), ran_at=clock.now()
        ))  # fmt: skip
    await es.sale(db, clock, tenant, 10_00, partner_index=0)
    await settle(services)
    rule = await active_rule(db, clock, s, condition=GROWTH, actions=[
        Action(ActionKind.RATE_OVERLAY, days=30, program_id=s.base_program_id, delta_bp=150)
    ])  # fmt: skip
    # Approval evaluates the rule at once (partner 0 grew already): it fires on RuleActivated.
    await settle(services)
    admin = s.author
    [firing] = nodes(await gql.data(FIRINGS, as_user=admin), "ruleFirings")
    assert (firing["trigger"], firing["partnerId"]) == ("ACTIVATION", gid(tenant.partners[0]))
    # 1.5 % on the trailing 30 days' pace (2,250.00 USD) over 30 days.
    assert firing["outcomes"] == [
        {"kind": "RATE_OVERLAY", "skipped": None, "estimatedCost": {"amountMinor": 33_75}}
    ]
    clock.advance(timedelta(hours=1))
    sale = await es.sale(db, clock, tenant, 200_00, partner_index=0)
    other = await es.sale(db, clock, tenant, 200_00, partner_index=1)
    await settle(services)
    partner = tenant.user(Role.PARTNER_ADMIN, 0)
    [overlay] = nodes(await gql.data(ENTRIES, {"kind": "RATE_OVERLAY"}, as_user=partner),
                      "earningEntries")  # fmt: skip
    assert overlay["amount"] == {"amountMinor": 3_00}
    # The partner reads what it earns, never the rule's internal name.
    assert overlay["rule"] == (
        "Partner Rewards: Incentive overlay +1.5% of 200.00 USD until 4 January 2027"
    )
    assert "Growth kicker" not in json.dumps(overlay)
    csv_text = (await export(client, gql, "commissions", partner)).text
    assert "Incentive overlay +1.5% of 200.00 USD" in csv_text
    assert "Growth kicker" not in csv_text
    assert overlay["inputs"]["sale_amount_minor"] == 200_00
    assert overlay["inputs"]["delta_bp"] == 150
    assert overlay["inputs"]["source_id"] == str(rule.id)
    # The other partner's sale pays no overlay.
    theirs = await gql.data(ENTRIES, {"kind": "RATE_OVERLAY"},
                            as_user=tenant.user(Role.PARTNER_ADMIN, 1))  # fmt: skip
    assert nodes(theirs, "earningEntries") == []
    assert {sale.payload["partner_id"], other.payload["partner_id"]} == {
        str(p.id) for p in tenant.partners
    }


async def test_a_payout_hold_stops_the_payout_with_the_partners_reason(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    s = await shop(db, clock, tenant, services)
    await es.tax_form(db, clock, tenant, 0)
    clock.freeze(T0 + timedelta(days=30))  # January: December's statements are due
    [statement] = [
        st for st in await es.generate(db, clock, tenant, services.claim_signals)
        if st.partner_id == tenant.partners[0].id
    ]  # fmt: skip
    assert statement.status.value == "PENDING"
    await active_rule(db, clock, s, name="Spike review", condition="revenue_90d >= 100000",
                      period=Period.MONTH, actions=[Action(
                          ActionKind.PAYOUT_HOLD, days=14,
                          partner_reason="Your sales grew fast, so we check this payout first",
                      )])  # fmt: skip
    assert await daily(db, clock) == 1  # partner 0 sold 2,240.00 USD, partner 1 500.00
    approve = """mutation($id: ID!) { payoutApprove(input: {statementId: $id}) {
      statement { status } userErrors { code } } }"""
    finance = tenant.user(Role.FINANCE)
    refused = await gql.data(approve, {"id": gid(statement)}, as_user=finance)
    assert refused["payoutApprove"]["userErrors"] == [{"code": "PAYOUT_HELD"}]
    payouts = await gql.data(
        "{ payouts { edges { node { status holds { explanation } } } } }",
        as_user=tenant.user(Role.PARTNER_ADMIN, 0),
    )
    [mine] = nodes(payouts, "payouts")
    assert mine["status"] == "HELD"
    [hold] = mine["holds"]
    assert hold == {
        "explanation": "Your sales grew fast, so we check this payout first. We expect to "
        "release it by 18 January 2027."
    }


async def test_a_group_window_pays_the_groups_program_then_stops(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    s = await shop(db, clock, tenant, services)
    await active_rule(
        db,
        clock,
        s,
        condition=GROWTH,
        period=Period.MONTH,
        actions=[Action(ActionKind.GROUP_WINDOW, days=3, group_id=s.boost_group_id)],
    )  # fmt: skip  (monthly: the later sales re-fire nothing in December)
    assert await daily(db, clock) == 1
    partner = tenant.user(Role.PARTNER_ADMIN, 0)
    clock.freeze(T0 + timedelta(days=1))
    await es.sale(db, clock, tenant, 100_00, partner_index=0)  # in the window
    # The partner reads the program that pays it in the window (it was answered as if it
    # did not exist: only open-ended memberships counted), and still does after it, where
    # its entries name it; a partner never in the group does not.
    assert await programs_read(gql, s, partner) == (["Partner Rewards", "Boost bonus"], True)
    clock.freeze(T0 + timedelta(days=4))
    await es.sale(db, clock, tenant, 300_00, partner_index=0)  # after it
    await settle(services)
    assert await programs_read(gql, s, partner) == (["Partner Rewards", "Boost bonus"], True)
    outsider = tenant.user(Role.PARTNER_ADMIN, 1)
    assert await programs_read(gql, s, outsider) == (["Partner Rewards"], False)
    entries = nodes(await gql.data(ENTRIES, {"kind": "COMMISSION"}, as_user=partner),
                    "earningEntries")  # fmt: skip
    paid = sorted((e["inputs"]["line_amount_minor"], e["amount"]["amountMinor"]) for e in entries)
    assert paid == [
        (100_00, 2_00), (100_00, 8_00),  # Boost bonus 2 % + Partner Rewards 8 %
        (300_00, 24_00),  # Partner Rewards only: the window has ended
        (1_000_00, 80_00), (1_240_00, 99_20),
    ]  # fmt: skip
    # The group's members, as vendor staff see them, follow the window.
    members = """query($id: ID!, $at: DateTime) { partnerGroup(id: $id) {
      members(at: $at) { edges { node { name } } } } }"""
    inside = await gql.data(members, {"id": s.gid("group"), "at": (T0 + timedelta(days=2))
                                      .isoformat()}, as_user=s.author)  # fmt: skip
    assert len(inside["partnerGroup"]["members"]["edges"]) == 1
    now = await gql.data(members, {"id": s.gid("group"), "at": None}, as_user=s.author)
    assert now["partnerGroup"]["members"]["edges"] == []


async def test_a_budget_cap_stops_further_rate_actions(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    s = await shop(db, clock, tenant, services)
    await active_rule(db, clock, s, condition=GROWTH, period=Period.DAY,
                      budget_cap_minor=2_00, actions=[
        Action(ActionKind.RATE_OVERLAY, days=1, program_id=s.base_program_id, delta_bp=200)
    ])  # fmt: skip
    assert await daily(db, clock) == 1
    clock.advance(timedelta(hours=1))
    await es.sale(db, clock, tenant, 500_00, partner_index=0)  # pays a 10.00 overlay
    await settle(services)  # (its signals fire nothing new: fired today already)
    clock.freeze(T0 + timedelta(days=1))
    assert await daily(db, clock) == 2  # a new day: it fires, but the budget is spent
    firings = nodes(await gql.data(FIRINGS, as_user=s.author), "ruleFirings")
    assert [f["outcomes"][0]["skipped"] for f in firings] == ["BUDGET_REACHED", None]
    clock.advance(timedelta(hours=1))
    await es.sale(db, clock, tenant, 500_00, partner_index=0)
    await settle(services)
    overlays = nodes(await gql.data(ENTRIES, {"kind": "RATE_OVERLAY"}, as_user=s.author),
                     "earningEntries")  # fmt: skip
    assert [o["amount"]["amountMinor"] for o in overlays] == [10_00]
