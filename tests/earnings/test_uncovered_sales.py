"""A sale no program covers is not silently worth nothing: the reviewer approving it is
warned (NO_PROGRAM_COVERS_SALE, approval not blocked), and the partner's explanation says
why it earned nothing."""

from __future__ import annotations

from typing import Any

from infra.clock import OffsetClock
from infra.db import Database
from partners.roles import Role
from schema.context import Services
from tests.deal_registration.sales.scenarios import CREATE, SKU, claim_input, seed_registry
from tests.earnings import scenarios as es
from tests.factories import Tenant
from tests.support import GQL

APPROVE = """mutation($input: SaleClaimApproveInput!) {
  saleClaimApprove(input: $input) {
    saleClaim { state } userErrors { code } warnings { code message } } }"""

EXPLANATIONS = """query($currency: String) { earnings(currency: $currency) {
  earned { amountMinor } explanations { kind text amount { amountMinor } } } }"""


async def approve_claim(
    gql: GQL, tenant: Tenant, serial: str, clock: OffsetClock, amount: dict[str, str]
) -> dict[str, Any]:
    """A claim by the partner's rep, approved by its channel manager; the approval payload."""
    created = await gql.data(
        CREATE,
        {"input": claim_input([serial], clock, amount=amount)},
        as_user=tenant.user(Role.PARTNER_REP),
    )
    claim = created["saleClaimCreate"]["saleClaim"]
    assert claim["state"] == "UNDER_REVIEW", created
    data = await gql.data(
        APPROVE, {"input": {"id": claim["id"]}}, as_user=tenant.user(Role.CHANNEL_MANAGER)
    )
    result: dict[str, Any] = data["saleClaimApprove"]
    return result


async def settings(gql: GQL, tenant: Tenant) -> None:
    await gql.data(
        """mutation { salesSettingsUpdate(input: {proofRequired: false,
             autoApproveLimit: {amount: "0", currency: "USD"}}) { userErrors { code } } }""",
        as_user=tenant.user(Role.VENDOR_ADMIN),
    )


async def test_a_sale_in_a_currency_no_program_pays_in_is_flagged_to_both(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    clock.freeze(clock.now().replace(day=3))
    serials = await seed_registry(db, clock, tenant)
    await es.make_program(db, clock, tenant, es.Rules(base_rates=(es.BaseRate(rate_bp=1_000),)))
    await settings(gql, tenant)

    approved = await approve_claim(
        gql, tenant, serials[0], clock, {"amount": "400.00", "currency": "EUR"}
    )
    assert approved["saleClaim"] == {"state": "APPROVED"}  # the warning does not block
    assert approved["userErrors"] == []
    assert approved["warnings"] == [
        {
            "code": "NO_PROGRAM_COVERS_SALE",
            "message": "Approved, but this sale earns the partner nothing: no program pays on "
            "sales in EUR.",
        }
    ]
    covered = await approve_claim(
        gql, tenant, serials[1], clock, {"amount": "100.00", "currency": "USD"}
    )
    assert covered["warnings"] == []
    await services.outbox.dispatch_pending()

    told = (
        "Your approved sale of 400.00 EUR earned nothing: no program pays on sales in EUR. "
        "Ask your channel manager which programs apply to you."
    )
    for user in (tenant.user(Role.PARTNER_ADMIN), tenant.user(Role.PARTNER_REP)):
        euros = await gql.data(EXPLANATIONS, {"currency": "EUR"}, as_user=user)
        assert euros["earnings"]["earned"] == {"amountMinor": 0}
        assert {
            "kind": "NOT_COVERED", "text": told, "amount": {"amountMinor": 40_000}
        } in euros["earnings"]["explanations"]  # fmt: skip
        # The partner reading its usual (USD) summary is told too.
        dollars = await gql.data(EXPLANATIONS, as_user=user)
        assert dollars["earnings"]["earned"] == {"amountMinor": 1_000}
        assert {"kind": "NOT_COVERED", "text": told, "amount": None} in dollars["earnings"][
            "explanations"
        ]
    # The other partner's summary says nothing about it.
    other = await gql.data(EXPLANATIONS, {"currency": "EUR"}, as_user=tenant.user(
        Role.PARTNER_ADMIN, 1))  # fmt: skip
    assert [e for e in other["earnings"]["explanations"] if e["kind"] == "NOT_COVERED"] == []


async def test_a_product_no_rate_reaches_is_named(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    clock.freeze(clock.now().replace(day=3))
    serials = await seed_registry(db, clock, tenant)
    only_other = es.BaseRate(rate_bp=1_000, sku="NW-OTHER-9")
    await es.make_program(db, clock, tenant, es.Rules(base_rates=(only_other,)))
    await settings(gql, tenant)

    approved = await approve_claim(
        gql, tenant, serials[0], clock, {"amount": "100.00", "currency": "USD"}
    )
    assert approved["saleClaim"] == {"state": "APPROVED"}
    assert approved["warnings"] == [
        {
            "code": "NO_PROGRAM_COVERS_SALE",
            "message": f"Approved, but this sale earns the partner nothing: no program pays on "
            f"{SKU}.",
        }
    ]
    await services.outbox.dispatch_pending()
    summary = await gql.data(EXPLANATIONS, as_user=tenant.user(Role.PARTNER_REP))
    assert {
        "kind": "NOT_COVERED",
        "text": f"Your approved sale of 100.00 USD earned nothing: no program pays on {SKU}. "
        "Ask your channel manager which programs apply to you.",
        "amount": {"amountMinor": 10_000},
    } in summary["earnings"]["explanations"]
