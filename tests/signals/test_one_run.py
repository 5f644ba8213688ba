"""A claim's approval moves its partner's signals in one handler run: the claim's notice
says its credit follows and is left to the credit's EarningsChanged, which moves the
claims with the credits (``signals.handlers``) — also when the credit comes after
midnight, and a rejection (no credit) is still counted by its own notice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import col, select

from infra.clock import OffsetClock
from infra.db import Database, begin_write
from infra.outbox import OutboxEvent
from partners.roles import Role
from schema.context import Services
from signals import daily, maintenance
from signals.events import SIGNALS_CHANGED
from signals.models import SignalFact, SignalSnapshot
from tests.deal_registration.sales.scenarios import CREATE, claim_input, seed_registry
from tests.earnings import scenarios as es
from tests.earnings.test_uncovered_sales import APPROVE
from tests.factories import Tenant
from tests.signals.scenarios import REJECT, settle
from tests.support import GQL

# 10:00 on the 3rd, two days after the serials' import (``seed_registry``).
MORNING = datetime(2026, 3, 1, 10, tzinfo=UTC)


async def setup(gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant) -> list[str]:
    clock.freeze(MORNING)
    serials = await seed_registry(db, clock, tenant)
    await es.make_program(db, clock, tenant, es.Rules(base_rates=(es.BaseRate(rate_bp=1_000),)))
    await gql.data(
        """mutation { salesSettingsUpdate(input: {proofRequired: false,
             autoApproveLimit: {amount: "0", currency: "USD"}}) { userErrors { code } } }""",
        as_user=tenant.user(Role.VENDOR_ADMIN),
    )
    await daily.take_all_due(db, clock)
    return serials


async def submit(gql: GQL, tenant: Tenant, clock: OffsetClock, serial: str, amount: str) -> str:
    created = await gql.data(
        CREATE,
        {"input": claim_input([serial], clock, amount={"amount": amount, "currency": "USD"})},
        as_user=tenant.user(Role.PARTNER_REP),
    )
    claim = created["saleClaimCreate"]["saleClaim"]
    assert claim["state"] == "UNDER_REVIEW", created
    claim_id: str = claim["id"]
    return claim_id


async def submitted(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> str:
    """The world of ``setup`` and a claim of 400.00 submitted in it, its notices handled."""
    serials = await setup(gql, db, clock, tenant)
    claim = await submit(gql, tenant, clock, serials[0], "400.00")
    await settle(services)
    return claim


async def changes(db: Database, tenant: Tenant) -> list[list[str]]:
    """The names of each SignalsChanged of partner 0, in order."""
    async with db.session() as session:
        events = await session.exec(
            select(OutboxEvent)
            .where(
                OutboxEvent.type == SIGNALS_CHANGED,
                OutboxEvent.aggregate_id == tenant.partners[0].id,
            )
            .order_by(col(OutboxEvent.id))
        )
        return [list(e.payload["names"]) for e in events]


async def stored(db: Database, tenant: Tenant) -> tuple[list[Any], list[Any]]:
    async with db.session() as session:
        facts = [
            f.model_dump()
            for f in await session.exec(
                select(SignalFact)
                .where(SignalFact.vendor_id == tenant.vendor.id)
                .order_by(col(SignalFact.partner_id), col(SignalFact.day))
            )
        ]
        snapshots = [
            (s.partner_id, s.day, s.values, s.basis)
            for s in await session.exec(
                select(SignalSnapshot)
                .where(SignalSnapshot.vendor_id == tenant.vendor.id)
                .order_by(col(SignalSnapshot.partner_id), col(SignalSnapshot.day))
            )
        ]
    return facts, snapshots


async def kept_and_rebuilt(
    db: Database, clock: OffsetClock, tenant: Tenant
) -> tuple[tuple[list[Any], ...], tuple[list[Any], ...]]:
    """What the handlers (and the daily job) kept, and what a rebuild stores instead."""
    await daily.take_all_due(db, clock)
    kept = await stored(db, tenant)
    async with db.transaction() as session:
        await begin_write(session)
        await maintenance.rebuild(session, clock, tenant.vendor.id)
    return kept, await stored(db, tenant)


async def test_an_approval_moves_the_claims_and_the_sale_in_one_snapshot_write(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    claim = await submitted(gql, db, clock, tenant, services)
    before = await changes(db, tenant)

    data = await gql.data(
        APPROVE, {"input": {"id": claim}}, as_user=tenant.user(Role.CHANNEL_MANAGER)
    )
    assert data["saleClaimApprove"]["saleClaim"] == {"state": "APPROVED"}
    await settle(services)

    after = await changes(db, tenant)
    assert len(after) == len(before) + 1  # one write of the snapshot, not two
    assert {"approved_claim_share", "revenue_7d", "earnings_7d"} <= set(after[-1])
    kept, rebuilt = await kept_and_rebuilt(db, clock, tenant)
    assert rebuilt == kept
    today = next(s for s in kept[1] if s[1] == clock.now().date())
    assert today[2]["approved_claim_share"] == 1.0
    assert today[2]["revenue_7d"] == 40_000


async def test_a_rejection_is_counted_by_its_own_notice(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    claim = await submitted(gql, db, clock, tenant, services)
    before = await changes(db, tenant)

    data = await gql.data(
        REJECT,
        {"input": {"id": claim, "reason": "INSUFFICIENT_PROOF"}},
        as_user=tenant.user(Role.CHANNEL_MANAGER),
    )
    assert data["saleClaimReject"]["saleClaim"]["state"] == "REJECTED"
    await settle(services)

    after = await changes(db, tenant)
    assert len(after) == len(before) + 1
    assert "approved_claim_share" in after[-1]
    kept, rebuilt = await kept_and_rebuilt(db, clock, tenant)
    assert rebuilt == kept
    today = next(s for s in kept[1] if s[1] == clock.now().date())
    assert today[2]["approved_claim_share"] == 0.0


async def test_an_approval_credited_after_midnight_counts_on_the_day_it_was_approved(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    claim = await submitted(gql, db, clock, tenant, services)
    clock.freeze(clock.now().replace(hour=23, minute=50))
    data = await gql.data(
        APPROVE, {"input": {"id": claim}}, as_user=tenant.user(Role.CHANNEL_MANAGER)
    )
    assert data["saleClaimApprove"]["saleClaim"] == {"state": "APPROVED"}
    approved_on = clock.now().date()
    # The dispatcher was down: the claim's notice and the credit are handled at 00:30.
    clock.advance(timedelta(minutes=40))
    await settle(services)

    kept, rebuilt = await kept_and_rebuilt(db, clock, tenant)
    assert rebuilt == kept
    day = next(f for f in kept[0] if f["day"] == approved_on)
    assert day["claims_approved"] == 1
