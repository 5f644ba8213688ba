"""The partner scorecard (issue 14, item 6): a quarter's KPIs for a joint business review;
a partner admin reads its own without the vendor-only figures, vendor staff read their
partners' with them, nobody reads another partner's or vendor's."""

from __future__ import annotations

from datetime import timedelta

from deal_registration.events import Line
from deal_registration.registrations.models import DealStatus
from earnings.programs import BaseRate, Rules
from forecasts import accuracy
from infra.clock import OffsetClock
from infra.db import Database
from infra.limits import GRAPHQL_INT_MAX
from partners.roles import Role
from schema.context import Services
from tests.earnings.scenarios import make_program
from tests.factories import CATALOGUE, Tenant, add_products, approve_sale, dispatch, gid
from tests.forecasts.scenarios import SUBMIT, add_deal, line, next_quarter
from tests.subscriptions.scenarios import CLOUD
from tests.support import GQL, error_codes

SHARED = """partnerName quarter programTier revenue { amountMinor }
  previousQuarterRevenue { amountMinor } growthBp dealsRegistered dealsWon dealsLost winRateBp
  pipelineVelocity { openDeals } forecast { commit { amountMinor } }
  forecastAccuracy { accuracyBp biasBp } commissions { amountMinor }
  payoutsPaid { amountMinor } payoutsPending { amountMinor } recurringRevenue { amountMinor }
  netRevenueRetentionBp"""
CARD = f"""query($p: ID!, $q: String!) {{ partnerScorecard(partnerId: $p, quarter: $q) {{
  {SHARED} }} }}"""
INTERNAL = f"""query($p: ID!, $q: String!) {{ partnerScorecard(partnerId: $p, quarter: $q) {{
  {SHARED} contributionMargin {{ amountMinor }} payoutRatioBp shareOfVendorRevenueBp }} }}"""


async def test_the_scorecard_of_a_quarter(
    gql: GQL, tenant: Tenant, other_tenant: Tenant, clock: OffsetClock, db: Database,
    services: Services,
) -> None:  # fmt: skip
    async with db.transaction() as session:
        await add_products(session, clock, tenant, (*CATALOGUE, CLOUD))  # 40 % margin
    await make_program(db, clock, tenant, Rules(base_rates=(BaseRate(rate_bp=800),)))
    q = next_quarter(clock)
    submitted = await gql.data(
        SUBMIT, {"input": {"quarter": q.key, "lines": [line("Other", "1000.00", "1200.00")]}},
        as_user=tenant.user(Role.PARTNER_ADMIN),
    )  # fmt: skip
    assert submitted["forecastSubmit"]["userErrors"] == []
    clock.advance(q.starts_at - clock.now() + timedelta(days=10))
    now = clock.now()
    await approve_sale(db, clock, tenant, partner=0, amount=1_500_00, lines=[
        Line("NW-ROUTER-X1", 1, 300_00), Line(CLOUD.sku, 1, 1_200_00)])  # fmt: skip
    await approve_sale(db, clock, tenant, partner=1, amount=500_00)
    await approve_sale(
        db, clock, tenant, partner=0, amount=1_000_00, sold_at=q.starts_at - timedelta(days=3)
    )  # the quarter before
    await add_deal(
        db,
        clock,
        tenant,
        status=DealStatus.WON,
        value=1_000_00,
        submitted_at=now - timedelta(days=5),
        closed_at=now,
    )
    await add_deal(
        db,
        clock,
        tenant,
        status=DealStatus.LOST,
        value=1_000_00,
        submitted_at=now - timedelta(days=5),
        closed_at=now,
    )
    await add_deal(db, clock, tenant, status=DealStatus.APPROVED, value=1_000_00)
    # fmt: skip
    while await dispatch(services):
        pass
    variables = {"p": gid(tenant.partners[0]), "q": q.key}

    card = (await gql.data(CARD, variables, as_user=tenant.user(Role.PARTNER_ADMIN)))[
        "partnerScorecard"
    ]
    assert card == {
        "partnerName": tenant.partners[0].name, "quarter": q.key, "programTier": "REGISTERED",
        "revenue": {"amountMinor": 150_000}, "previousQuarterRevenue": {"amountMinor": 100_000},
        "growthBp": 5_000, "dealsRegistered": 3, "dealsWon": 1, "dealsLost": 1,
        "winRateBp": 5_000, "pipelineVelocity": {"openDeals": 1},
        "forecast": {"commit": {"amountMinor": 100_000}}, "forecastAccuracy": None,
        # 8 % of the 2,500.00 credited (booked) in the quarter
        "commissions": {"amountMinor": 20_000},
        "payoutsPaid": {"amountMinor": 0}, "payoutsPending": {"amountMinor": 0},
        # the yearly subscription sold in the quarter; no 12-month cohort yet
        "recurringRevenue": {"amountMinor": 120_000}, "netRevenueRetentionBp": None,
    }  # fmt: skip
    # Vendor-only figures: refused to the partner, given to vendor staff.
    refused = await gql(INTERNAL, variables, as_user=tenant.user(Role.PARTNER_ADMIN))
    assert set(error_codes(refused)) == {"FORBIDDEN"}
    vendor = (await gql.data(INTERNAL, variables, as_user=tenant.user(Role.CHANNEL_MANAGER)))[
        "partnerScorecard"
    ]
    assert vendor["contributionMargin"] == {"amountMinor": 60_000 - 20_000}
    assert vendor["payoutRatioBp"] == 1_333
    assert vendor["shareOfVendorRevenueBp"] == 7_500

    # Nobody else reads it.
    other_partner = await gql.data(CARD, variables, as_user=tenant.user(Role.PARTNER_ADMIN, 1))
    assert other_partner["partnerScorecard"] is None
    unassigned = {"p": gid(tenant.partners[1]), "q": q.key}
    manager = await gql.data(CARD, unassigned, as_user=tenant.user(Role.CHANNEL_MANAGER))
    assert manager["partnerScorecard"] is None
    other_vendor = await gql.data(CARD, variables, as_user=other_tenant.user(Role.VENDOR_ADMIN))
    assert other_vendor["partnerScorecard"] is None
    rep = await gql(CARD, variables, as_user=tenant.user(Role.PARTNER_REP))
    assert error_codes(rep) == ["FORBIDDEN"]
    assert error_codes(await gql(CARD, variables)) == ["UNAUTHENTICATED"]
    bad = await gql(CARD, {**variables, "q": "next"}, as_user=tenant.user(Role.VENDOR_ADMIN))
    assert error_codes(bad) == ["INVALID_QUARTER"]

    # Once the quarter has closed, the scorecard carries the forecast's accuracy.
    clock.advance(q.ends_at - clock.now() + timedelta(hours=2))
    await accuracy.close_all_due(db, clock)
    closed = (await gql.data(CARD, variables, as_user=tenant.user(Role.PARTNER_ADMIN)))[
        "partnerScorecard"
    ]
    # 1 − |1500 − 1000| / 1500; bias (1000 − 1500) / 1500
    assert closed["forecastAccuracy"] == {"accuracyBp": 6_667, "biasBp": -3_333}


async def test_a_growth_past_32_bits_is_shown_at_the_int_bound(
    gql: GQL, tenant: Tenant, clock: OffsetClock, db: Database, services: Services
) -> None:
    """Growth from 1 cent to 10 billion is 10**16 basis points: past GraphQL's 32-bit Int,
    which graphql-core refuses (the whole scorecard errored). Shown at the bound
    (infra.limits.int_output), as the field says."""
    await make_program(db, clock, tenant, Rules(base_rates=(BaseRate(rate_bp=800),)))
    q = next_quarter(clock)
    clock.advance(q.starts_at - clock.now() + timedelta(days=10))
    await approve_sale(db, clock, tenant, partner=0, amount=10**12)
    await approve_sale(
        db, clock, tenant, partner=0, amount=1, sold_at=q.starts_at - timedelta(days=3)
    )
    while await dispatch(services):
        pass
    variables = {"p": gid(tenant.partners[0]), "q": q.key}
    payload = await gql(
        "query($p: ID!, $q: String!) { partnerScorecard(partnerId: $p, quarter: $q) {"
        " revenue { amountMinor } growthBp } }",
        variables, as_user=tenant.user(Role.PARTNER_ADMIN),
    )  # fmt: skip
    assert "errors" not in payload, payload
    card = payload["data"]["partnerScorecard"]
    assert card == {"revenue": {"amountMinor": 10**12}, "growthBp": GRAPHQL_INT_MAX}
