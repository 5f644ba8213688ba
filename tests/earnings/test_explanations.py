"""Plain-language explanations generated from the ledger: a rise, a drop (by revenue and by
a quality gate), a clawback and a hold. Expected sentences written by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from earnings import payouts, service
from earnings.explanations import ExplanationKind
from earnings.repository import Scope
from infra.clock import OffsetClock
from infra.db import Database
from partners.roles import Role
from schema.context import Services
from tests.earnings import scenarios as es
from tests.earnings.scenarios import tx
from tests.factories import Tenant, dispatch, reverse_sale


async def texts(
    services: Services, clock: OffsetClock, tenant: Tenant, start: datetime, end: datetime
) -> dict[ExplanationKind, str]:
    scope = Scope(tenant.vendor.id, tenant.partners[0].id)
    principal = tenant.principal(Role.PARTNER_ADMIN)
    async with services.db.session() as session:
        summary = await service.summary(
            session, principal, clock, scope=scope, start=start, end=end,
            signals=services.claim_signals,
        )  # fmt: skip
    return {e.kind: e.text for e in summary.explanations}


async def test_rise_then_drop_by_revenue(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    clock.freeze(datetime(2026, 2, 10, tzinfo=UTC))
    await es.make_program(db, clock, tenant, es.worked_rules(clock.now() - timedelta(days=99)))
    await es.sale(db, clock, tenant, 600_000)  # 480.00 at 8%
    await dispatch(services)  # booked in February
    clock.freeze(datetime(2026, 3, 5, tzinfo=UTC))
    await es.sale(db, clock, tenant, 1_940_000)  # 25,400.00 in 30 days: Gold, 1,940.00
    await dispatch(services)
    march = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)
    found = await texts(services, clock, tenant, *march)
    assert found[ExplanationKind.EARNINGS_ROSE] == (
        "You earned 1,940.00 USD in this period, 1,460.00 USD more than in the previous "
        "period (480.00 USD)."
    )
    assert found[ExplanationKind.RATE_ROSE] == (
        "Your rate rose from 8% to 10% because your 30-day qualified revenue reached "
        "25,400.00 USD, above the Gold threshold of 25,000.00 USD."
    )
    assert ExplanationKind.NEXT_TIER not in found  # Gold is the top tier

    clock.freeze(datetime(2026, 4, 10, tzinfo=UTC))
    await es.sale(db, clock, tenant, 100_000)  # the March sale left the window: 80.00
    await dispatch(services)
    april = datetime(2026, 4, 1, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC)
    found = await texts(services, clock, tenant, *april)
    assert found[ExplanationKind.EARNINGS_FELL] == (
        "You earned 80.00 USD in this period, 1,860.00 USD less than in the previous period "
        "(1,940.00 USD)."
    )
    assert found[ExplanationKind.RATE_FELL] == (
        "Your rate fell from 9% to 8% because your 30-day qualified revenue fell to "
        "1,000.00 USD, below the Silver threshold of 10,000.00 USD."
    )
    assert found[ExplanationKind.NEXT_TIER] == (
        "Another 9,000.00 USD of qualified revenue within 30 days moves you to Silver "
        "(+1% on every sale)."
    )


async def test_drop_by_a_quality_gate_and_the_clawback(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    clock.freeze(datetime(2026, 3, 2, tzinfo=UTC))
    await es.make_program(db, clock, tenant, es.worked_rules(clock.now() - timedelta(days=99)))
    small = await es.sale(db, clock, tenant, 500_000)
    await es.sale(db, clock, tenant, 2_500_000)
    await dispatch(services)
    clock.freeze(datetime(2026, 3, 4, tzinfo=UTC))
    await reverse_sale(db, clock, tenant, small, reason="customer refund")
    await dispatch(services)
    found = await texts(
        services, clock, tenant, datetime(2026, 3, 3, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)
    )
    assert found[ExplanationKind.RATE_FELL] == (
        "Your rate fell from 10% to 9% because your refund rate of 16.66% is above the 10% "
        "Gold allows, although your 30-day qualified revenue of 25,000.00 USD reaches the "
        "Gold threshold."
    )
    assert found[ExplanationKind.CLAWBACK] == (
        "400.00 USD was taken back because 1 sale was reversed (customer refund)."
    )


async def test_hold_is_explained_with_what_clears_it(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    clock.freeze(datetime(2026, 3, 2, tzinfo=UTC))
    await es.make_program(db, clock, tenant, es.worked_rules(clock.now()))
    await es.sale(db, clock, tenant, 100_000)
    await dispatch(services)
    clock.freeze(datetime(2026, 4, 2, tzinfo=UTC))
    await tx(
        db,
        lambda s: payouts.generate_statements(
            s,
            tenant.principal(Role.FINANCE),
            clock,
            month=datetime(2026, 3, 1, tzinfo=UTC),
            signals=services.claim_signals,
        ),
    )
    found = await texts(
        services, clock, tenant, datetime(2026, 4, 1, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC)
    )
    assert found[ExplanationKind.HOLD] == (
        "Your payout for March 2026 (80.00 USD) is held. We need your tax form before we can "
        "pay you. Send your tax form to your channel manager; the hold is lifted as soon as it "
        "is on file, and the payout then goes through the usual approval."
    )
