"""Sale claims feed earnings end to end: an approved claim is credited once, and a risk
flag raised on the claim holds the partner's payout (and stays invisible to the partner)."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlmodel import select

from earnings.models import EarningEntry, HoldReason, PayoutStatus
from infra.clock import OffsetClock
from infra.db import Database
from partners.roles import Role
from schema.context import Services
from tests.deal_registration.sales.scenarios import CREATE, claim_input, seed_registry
from tests.earnings import scenarios as es
from tests.earnings.scenarios import generate, holds_of, tax_form
from tests.factories import Tenant
from tests.support import GQL

APPROVE = """mutation($input: SaleClaimApproveInput!) {
  saleClaimApprove(input: $input) { saleClaim { state } userErrors { code } } }"""


async def test_a_flagged_claim_approved_by_a_reviewer_holds_the_payout(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    clock.freeze(clock.now().replace(day=3))
    serials = await seed_registry(db, clock, tenant)
    await es.make_program(db, clock, tenant, es.Rules(base_rates=(es.BaseRate(rate_bp=1_000),)))
    await tax_form(db, clock, tenant)
    admin, rep = tenant.user(Role.VENDOR_ADMIN), tenant.user(Role.PARTNER_REP)
    await gql.data(
        "mutation { salesSettingsUpdate(input: {proofRequired: false}) { userErrors { code } } }",
        as_user=admin,
    )
    # 900.00 for one unit listed at 100.00: far above list price, so flagged for review.
    created = await gql.data(
        CREATE,
        {"input": claim_input(serials[:1], clock, amount={"amount": "900.00", "currency": "USD"})},
        as_user=rep,
    )
    claim = created["saleClaimCreate"]["saleClaim"]
    assert claim["state"] == "UNDER_REVIEW"
    approved = await gql.data(APPROVE, {"input": {"id": claim["id"]}}, as_user=admin)
    assert approved["saleClaimApprove"]["saleClaim"]["state"] == "APPROVED"

    await services.outbox.dispatch_pending()
    await services.outbox.dispatch_pending()  # a second run credits nothing more
    async with db.session() as session:
        entries = list(await session.exec(select(EarningEntry)))
    assert sum(e.amount_minor for e in entries) == 9_000  # 10% of 900.00, once

    clock.freeze(clock.now().replace(day=1) + timedelta(days=32))
    [statement] = await generate(db, clock, tenant, services.claim_signals)
    assert statement.status is PayoutStatus.HELD
    [hold] = await holds_of(db, statement)
    assert hold.reason is HoldReason.RISK_FLAGS
    assert any("AMOUNT" in flag for flag in hold.risk_flags), hold.risk_flags

    partner_view = await gql(
        "{ payouts { edges { node { status holds { explanation clears } } } } }",
        as_user=tenant.user(Role.PARTNER_ADMIN),
    )
    assert "errors" not in partner_view, partner_view
    assert "AMOUNT" not in json.dumps(partner_view)
