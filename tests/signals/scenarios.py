"""The signal scenario: a partner's sales (claims through GraphQL, one rejected, one
refunded), deals (won, lost, open, answered a day after submission) and logins over nine
days, with every signal's value on the last day computed by hand (``EXPECTED_D8``)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from starlette.applications import Starlette

from deal_registration.registrations import outcome, review
from deal_registration.registrations.models import DealRegistration
from deal_registration.sales import serials
from earnings.programs import BaseRate, Rules
from infra.clock import OffsetClock
from infra.db import Database
from partners.roles import Role
from schema.context import Services
from tests.deal_registration.registrations.scenarios import register
from tests.deal_registration.sales.scenarios import CREATE, SKU, claim_input, csv_bytes
from tests.earnings.scenarios import make_program
from tests.factories import Product, Tenant, add_products, dispatch, principal_of
from tests.support import GQL

# A widget lists at 100.00 with a 40 % catalogue margin; the program pays 10 % of sales.
WIDGET = Product(SKU, 100_00, name="Widget", margin_rate_bp=4_000)
ROUTER = Product("NW-ROUTER-X1", 129_900)

REJECT = """
mutation($input: SaleClaimRejectInput!) {
  saleClaimReject(input: $input) { saleClaim { state } userErrors { code } }
}"""
REVERSE = """
mutation($input: SaleClaimReverseInput!) {
  saleClaimReverse(input: $input) { saleClaim { state } userErrors { code } }
}"""
SETTINGS = """
mutation($input: SalesSettingsUpdateInput!) {
  salesSettingsUpdate(input: $input) { userErrors { code } }
}"""
ME = "{ me { role } }"

# Partner 0 on the scenario's last day (D8), by hand:
# sales credited: A 200.00 (D0), B 100.00 and D 90.00 (D8); B refunded on D8 (-100.00).
# earnings (10 %): 20.00 + 10.00 + 9.00 - 10.00 clawback = 29.00; on D2..D8: 9.00.
# catalogue margin (40 %): 80.00 + 40.00 + 36.00 - 40.00 = 116.00.
EXPECTED_D8: dict[str, Any] = {
    "revenue_7d": 9_000,  # D2..D8: 100.00 + 90.00 - 100.00
    "revenue_30d": 29_000,  # 200.00 + 100.00 + 90.00 - 100.00
    "revenue_90d": 29_000,
    "revenue_growth_wow": (9_000 - 20_000) / 20_000,  # D2..D8 against D-5..D1
    "revenue_growth_mom": None,  # nothing in the 30 days before
    "earnings_7d": 900,
    "earnings_30d": 2_900,
    "gross_margin": 11_600 / 29_000,  # 0.4: every widget carries 40 %
    "contribution_margin": (11_600 - 2_900) / 29_000,  # 0.3 after the partner's 10 %
    "payout_ratio": 2_900 / 29_000,
    "refund_rate": 10_000 / 39_000,  # refunded / approved sales of 90 days
    "approved_claim_share": 3 / 4,  # A, B, D approved; C rejected
    "risk_flags_30d": 0,
    "claims_submitted_30d": 4,
    "deals_registered_30d": 3,
    "deals_won_90d": 1,
    "deals_lost_90d": 1,
    "win_rate": 0.5,
    "open_pipeline": 200_000,  # Z (2,000.00) is still open; X won, Y lost
    "registration_response_days": 1.0,  # X and Y were taken into review a day after
    "days_since_last_sale": 0,
    "days_since_first_sale": 8,
    "activated": True,
    "active_users_7d": 1,  # the rep (D8); the partner admin was last seen on D0
    "active_users_30d": 2,
    "forecast_accuracy": None,  # no quarter with a forecast has closed
    "concentration_alert_open": False,
}


@dataclass
class Scenario:
    d0: date
    deals: dict[str, DealRegistration]


async def flush_activity(app: Starlette) -> None:
    await app.state.authenticator.active_users.flush()


async def settle(services: Services) -> None:
    """Dispatch until the outbox is empty (a credit records EarningsChanged, handled next)."""
    while await dispatch(services):
        pass


async def claim(gql: GQL, tenant: Tenant, clock: OffsetClock, serial: str, amount: str) -> str:
    data = await gql.data(
        CREATE,
        {"input": claim_input([serial], clock, amount={"amount": amount, "currency": "USD"})},
        as_user=tenant.user(Role.PARTNER_REP),
    )
    result = data["saleClaimCreate"]
    assert result["userErrors"] == []
    claim_id: str = result["saleClaim"]["id"]
    return claim_id


async def run(
    app: Starlette, services: Services, db: Database, clock: OffsetClock, gql: GQL,
    tenant: Tenant,
) -> Scenario:  # fmt: skip
    admin = tenant.user(Role.VENDOR_ADMIN)
    rep = tenant.user(Role.PARTNER_REP)
    async with db.transaction() as session:
        await add_products(session, clock, tenant, (WIDGET, ROUTER))
        rows = [
            (f"SN{i:06d}", SKU, tenant.partners[0].name, "EMEA",
             (clock.now() - timedelta(days=30)).date().isoformat(), "SHIPPED")
            for i in range(1, 7)
        ]  # fmt: skip
        await serials.import_serials(
            session, principal_of(admin), clock, source=io.BytesIO(csv_bytes(rows))
        )
    await make_program(db, clock, tenant, Rules(base_rates=(BaseRate(rate_bp=1_000),)))
    clock.advance(timedelta(days=2))  # past the fresh-import risk window
    d0 = clock.now().date()

    # D0: claim C waits for proof and is rejected; proof is then waived and A (2 units,
    # 200.00) is approved automatically. Deals X and Y are submitted. The partner admin
    # looks in.
    c = await claim(gql, tenant, clock, "SN000001", "80.00")
    data = await gql.data(
        REJECT, {"input": {"id": c, "reason": "INSUFFICIENT_PROOF"}}, as_user=admin
    )
    assert data["saleClaimReject"]["saleClaim"]["state"] == "REJECTED"
    await gql.data(SETTINGS, {"input": {"proofRequired": False}}, as_user=admin)
    data = await gql.data(
        CREATE,
        {"input": claim_input(["SN000002", "SN000003"], clock,
                              amount={"amount": "200.00", "currency": "USD"})},
        as_user=rep,
    )  # fmt: skip
    assert data["saleClaimCreate"]["saleClaim"]["state"] == "AUTO_APPROVED"
    deals = {
        "X": await register(db, clock, rep, customer_domain="x.example", customer_name="X Co",
                            estimated_value_minor=1_000_000),
        "Y": await register(db, clock, rep, customer_domain="y.example", customer_name="Y Co",
                            estimated_value_minor=500_000),
    }  # fmt: skip
    await gql.data(ME, as_user=tenant.user(Role.PARTNER_ADMIN))
    await settle(services)
    await flush_activity(app)

    # D1: both deals are taken into review (the first answer: one day), and approved.
    clock.advance(timedelta(days=1))
    for key in ("X", "Y"):
        async with db.transaction() as session:
            await review.start_review(
                session, principal_of(admin), clock, registration_id=deals[key].id
            )
        async with db.transaction() as session:
            await review.approve(session, principal_of(admin), clock, registration_id=deals[key].id)
    await settle(services)

    # D8: B (100.00) is approved and refunded, D (90.00) approved; X won, Y lost, Z submitted.
    clock.advance(timedelta(days=7))
    b = await claim(gql, tenant, clock, "SN000004", "100.00")
    await settle(services)
    data = await gql.data(REVERSE, {"input": {"id": b, "reason": "REFUNDED"}}, as_user=admin)
    assert data["saleClaimReverse"]["saleClaim"]["state"] == "REVERSED"
    await claim(gql, tenant, clock, "SN000005", "90.00")
    async with db.transaction() as session:
        await outcome.mark_won(session, principal_of(rep), clock, registration_id=deals["X"].id)
    async with db.transaction() as session:
        await outcome.mark_lost(session, principal_of(rep), clock, registration_id=deals["Y"].id)
    deals["Z"] = await register(
        db, clock, rep, customer_domain="z.example", customer_name="Z Co",
        estimated_value_minor=200_000,
    )  # fmt: skip
    await settle(services)
    await flush_activity(app)
    return Scenario(d0=d0, deals=deals)
