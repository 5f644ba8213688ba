"""Done means: one subscription followed from the first sale through two renewals, an
expansion and a cancellation inside the clawback window, through GraphQL, checking the
ledger (amounts, rules, inputs), the partner's explanations and the NEW_ARR contest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from earnings import recurring
from infra.clock import OffsetClock
from infra.db import Database
from partners.roles import Role
from schema.context import Services
from tests.factories import Tenant, approve_sale
from tests.leaderboards.scenarios import BOARD
from tests.subscriptions import scenarios as ss
from tests.support import GQL

PROGRAM = """mutation($input: EarningProgramCreateInput!) { earningProgramCreate(input: $input) {
  program { id versions { rules { recurring { renewalScheduleBp clawbackDays
    retentionBonus { amountMinor } } } } }
  userErrors { code field message } } }"""

CONTEST = """mutation($input: ContestCreateInput!) { contestCreate(input: $input) {
  contest { id status } userErrors { field code message } } }"""

ENTRIES = """{ earningEntries(first: 100) { edges { node {
  kind amount { amountMinor } rule inputs effectiveAt } } } }"""

SUMMARY = """query($period: EarningsPeriodInput) { earnings(period: $period) {
  earned { amountMinor } explanations { kind text amount { amountMinor } } } }"""


def at(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, 9, 0, tzinfo=UTC)


async def test_a_subscription_from_first_sale_to_cancellation_in_the_clawback_window(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    admin, finance = tenant.user(Role.VENDOR_ADMIN), tenant.user(Role.FINANCE)
    partner_admin = tenant.user(Role.PARTNER_ADMIN)
    clock.freeze(ss.T0 - timedelta(days=1))
    await ss.seed(db, clock, tenant)
    program = {
        "name": "Cloud Partners", "currency": "USD",
        "rules": {
            "baseRates": [{"rateBp": 1000}],
            "recurring": {
                "renewalScheduleBp": [1000, 500], "maxRenewals": 3, "expansionBonusBp": 500,
                "retentionMonths": 18, "retentionBonus": "50.00", "clawbackDays": 30,
            },
        },
    }  # fmt: skip
    created = (await gql.data(PROGRAM, {"input": program}, as_user=admin))["earningProgramCreate"]
    assert created["userErrors"] == []
    assert created["program"]["versions"][0]["rules"]["recurring"] == {
        "renewalScheduleBp": [1000, 500], "clawbackDays": 30,
        "retentionBonus": {"amountMinor": 5_000},
    }  # fmt: skip
    contest_input = {
        "name": "New ARR", "metric": "NEW_ARR", "publish": True,
        "startsAt": (ss.T0 - timedelta(hours=2)).isoformat(),
        "endsAt": (ss.T0 + timedelta(days=720)).isoformat(),
    }  # fmt: skip
    contest = (await gql.data(CONTEST, {"input": contest_input}, as_user=admin))["contestCreate"]
    assert contest["userErrors"] == []
    contest_id = contest["contest"]["id"]

    # 1. The first sale: 1,200.00 of a yearly subscription, 10% commission, 1,200.00 new ARR.
    clock.freeze(ss.T0)
    await approve_sale(db, clock, tenant, amount=120_000, sku=ss.CLOUD.sku, customer="Initech GmbH")
    await ss.settle(services)
    subs = (await gql.data(ss.SUBSCRIPTIONS, as_user=partner_admin))["subscriptions"]
    assert subs["totalCount"] == 1
    sub = subs["edges"][0]["node"]
    assert (sub["sku"], sub["status"], sub["account"]["name"]) == (
        "NW-CLOUD-1Y",
        "ACTIVE",
        "Initech GmbH",
    )
    assert sub["annualRecurringRevenue"]["amountMinor"] == 120_000
    sid = sub["id"]

    async def report(query: str, name: str, **fields: Any) -> dict[str, Any]:
        data = await gql.data(query, {"input": {"subscriptionId": sid, **fields}}, as_user=finance)
        assert data[name]["userErrors"] == [], data
        await ss.settle(services)
        return dict(data[name]["subscription"])

    # 2. The first renewal (a year on): 10% of 1,200.00.
    clock.freeze(at(2026, 12, 31))
    renewed = await report(ss.RENEW, "subscriptionRenew", externalId="inv-2027")
    assert (renewed["renewals"], renewed["endsAt"]) == (1, "2028-01-05T09:00:00+00:00")
    # 3. An expansion to 1,500.00: 5% of the 300.00 increase; 300.00 more ARR for the contest.
    clock.freeze(at(2027, 2, 9))
    await report(ss.EXPAND, "subscriptionExpand", externalId="up-1",
                 amount={"amount": "1500.00", "currency": "USD"})  # fmt: skip
    # The retention check (run every minute beside the dispatcher) after 18 months.
    clock.freeze(at(2027, 7, 6))
    assert await recurring.credit_retention(db, clock) == 1
    assert await recurring.credit_retention(db, clock) == 0  # once only
    # 4. The second renewal: the schedule declines to 5% of 1,500.00.
    clock.freeze(at(2028, 1, 1))
    await report(ss.RENEW, "subscriptionRenew", externalId="inv-2028")
    # 5. Cancelled 15 days into the new term (started 2028-01-05): inside the 30-day window,
    # so that term's renewal commission is taken back; the expansion (an earlier term) stays.
    clock.freeze(at(2028, 1, 20))
    cancelled = await report(ss.CANCEL, "subscriptionCancel", externalId="cx-1")
    assert cancelled["status"] == "CANCELLED"

    entries = [
        e["node"]
        for e in (await gql.data(ENTRIES, as_user=partner_admin))["earningEntries"]["edges"]
    ]
    ledger = sorted((e["effectiveAt"][:10], e["kind"], e["amount"]["amountMinor"]) for e in entries)
    assert ledger == [
        ("2026-01-05", "COMMISSION", 12_000),  # the sale: 10% of 1,200.00
        ("2026-12-31", "RENEWAL_COMMISSION", 12_000),  # renewal 1: 10% of 1,200.00
        ("2027-02-09", "EXPANSION_BONUS", 1_500),  # 5% of the 300.00 net increase
        ("2027-07-05", "RETENTION_BONUS", 5_000),  # still active 18 months in
        ("2028-01-01", "RENEWAL_COMMISSION", 7_500),  # renewal 2: 5% of 1,500.00
        ("2028-01-20", "CLAWBACK", -7_500),  # cancelled 15 days into that term
    ]
    by_kind = {e["kind"]: e for e in entries if e["kind"] != "COMMISSION"}
    second = next(
        e
        for e in entries
        if e["kind"] == "RENEWAL_COMMISSION" and e["inputs"]["renewal_number"] == 2
    )
    assert second["rule"] == (
        "Cloud Partners: 5% of renewal 2 of Initech GmbH's NW-CLOUD-1Y subscription "
        "(1,500.00 USD for 12 months)"
    )
    assert second["inputs"]["rate_bp"] == 500
    assert second["inputs"]["schedule_bp"] == [1000, 500]
    assert by_kind["EXPANSION_BONUS"]["inputs"]["net_increase_minor"] == 30_000
    assert "net increase 300.00 USD" in by_kind["EXPANSION_BONUS"]["rule"]
    assert by_kind["CLAWBACK"]["rule"] == (
        "Clawback of the renewal commission 75.00 USD: Initech GmbH cancelled the NW-CLOUD-1Y "
        "subscription 15 days into its term, within the 30-day clawback window"
    )
    assert by_kind["CLAWBACK"]["inputs"]["days_into_term"] == 15
    assert "still active 18 months after it started" in by_kind["RETENTION_BONUS"]["rule"]

    period = {"start": at(2026, 12, 30).isoformat(), "end": at(2028, 1, 21).isoformat()}
    summary = (await gql.data(SUMMARY, {"period": period}, as_user=partner_admin))["earnings"]
    assert summary["earned"]["amountMinor"] == 12_000 + 1_500 + 5_000 + 7_500 - 7_500
    texts = {e["kind"]: e["text"] for e in summary["explanations"]}
    assert texts["RENEWALS"] == "Renewals of your customers' subscriptions added 195.00 USD."
    assert texts["EXPANSION_BONUS"].startswith("Expansion bonuses")
    assert texts["RETENTION_BONUS"].startswith("Retention bonuses")
    assert texts["SUBSCRIPTION_CLAWBACK"] == (
        "75.00 USD was taken back because 1 subscription was cancelled within the clawback "
        "window (30 days of the term's start): what that term's renewal and expansions earned."
    )
    assert "CLAWBACK" not in texts  # no sale was reversed

    # The contest: 1,200.00 new ARR + 300.00 expansion ARR; renewals and the cancellation
    # are not new ARR.
    clock.freeze(at(2027, 3, 1))  # read the board while the contest runs
    board = (await gql.data(BOARD, {"id": contest_id}, as_user=admin))["leaderboard"]
    assert [(e["node"]["participant"]["name"], e["node"]["score"]) for e in board["edges"]] == [
        (tenant.partners[0].name, 150_000)
    ]

    history = (await gql.data(ss.SUBSCRIPTIONS, as_user=partner_admin))["subscriptions"]
    kinds = [h["kind"] for h in history["edges"][0]["node"]["history"]]
    assert kinds == ["STARTED", "RENEWED", "EXPANDED", "RENEWED", "CANCELLED"]
