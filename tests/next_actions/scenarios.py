"""A partner with one of each built-in next best action: a payout held for its tax form,
a claim waiting for proof, a protected deal ending in ten days, a contest prize within
reach, and the next tier; the other partner leads the contest and has its tax form."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from infra.clock import OffsetClock
from partners.roles import Role
from schema.context import Services
from tests.deal_registration.registrations.scenarios import register
from tests.deal_registration.sales.scenarios import CREATE, claim_input, seed_registry
from tests.earnings import scenarios as es
from tests.factories import Tenant, add_products, create_contest, dispatch
from tests.support import GQL

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
QUERY = """query($partnerId: ID) { nextActions(partnerId: $partnerId) { actions {
  key kind title why dueAt amount { amountMinor currency } link code subjectId } } }"""
KINDS_IN_ORDER = ["HOLD_NEEDS_DOCUMENT", "CLAIM_NEEDS_PROOF", "DEAL_PROTECTION_EXPIRING",
                  "CONTEST_PRIZE_IN_REACH", "NEXT_TIER"]  # fmt: skip


async def world(gql: GQL, clock: OffsetClock, tenant: Tenant, services: Services) -> dict[str, Any]:
    db = services.db
    admin = tenant.user(Role.VENDOR_ADMIN)
    rep = tenant.user(Role.PARTNER_REP, 0)
    # A deal approved 80 days before T0: its 90-day protection ends ten days after T0
    # (eight days after the registry below has settled).
    clock.freeze(T0 - timedelta(days=80))
    async with db.transaction() as session:
        await add_products(session, clock, tenant)
    deal = await register(db, clock, rep, approve_as=admin)
    clock.freeze(datetime(2026, 2, 1, tzinfo=UTC))
    await es.make_program(db, clock, tenant, es.worked_rules(clock.now()))
    clock.freeze(datetime(2026, 2, 10, tzinfo=UTC))
    await es.sale(db, clock, tenant, 1_200_000)  # partner 0: Silver, 13,000.00 short of Gold
    await es.sale(db, clock, tenant, 100_000, partner_index=1)
    await dispatch(services)
    await es.tax_form(db, clock, tenant, 1)
    clock.freeze(T0)
    await es.generate(db, clock, tenant, services.claim_signals)  # partner 0: held, no tax form
    # A claim waiting for proof (the registry settles two days).
    await seed_registry(db, clock, tenant, 4)
    made = await gql.data(CREATE, {"input": claim_input(["SN000001"], clock)}, as_user=rep)
    claim = made["saleClaimCreate"]["saleClaim"]
    assert claim["state"] == "NEEDS_PROOF"
    # A contest: partner 1 leads with 1,000.00, partner 0 is 100.00 (10 %) behind the prize.
    contest = await create_contest(
        db, clock, tenant, name="Spring sprint",
        prizes=[{"from_rank": 1, "to_rank": 1, "prize": "A trip to Lisbon"}],
    )  # fmt: skip
    await es.sale(db, clock, tenant, 100_000, partner_index=1, rep=False)
    await es.sale(db, clock, tenant, 90_000, partner_index=0, rep=False)
    await dispatch(services)
    return {"deal": deal, "claim": claim, "contest": contest}
