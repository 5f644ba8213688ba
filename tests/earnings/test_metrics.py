"""Vendor metrics worked by hand: contribution margin from the catalogue's margin rate, and
earnings volatility."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from deal_registration.events import Line
from earnings.metrics import vendor_metrics, volatility_bp
from infra.clock import OffsetClock
from infra.db import Database
from partners.roles import Role
from schema.context import Services
from tests.earnings import scenarios as es
from tests.factories import Tenant, dispatch
from tests.support import GQL, error_codes


def test_volatility_is_the_coefficient_of_variation() -> None:
    assert volatility_bp([100, 100, 100]) == 0
    # Mean 100, population standard deviation sqrt(50,000) = 223.6...: 2.236 = 22,360 bp.
    assert volatility_bp([0, 0, 0, 0, 0, 600]) == 22_360
    assert volatility_bp([0, 0]) is None
    assert volatility_bp([]) is None


async def test_contribution_margin_and_payout_ratio(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    clock.freeze(datetime(2026, 3, 2, tzinfo=UTC))
    await es.seed_products(db, clock, tenant)
    await es.make_program(db, clock, tenant, es.worked_rules(clock.now() - timedelta(days=1)))
    await es.sale(db, clock, tenant, 459_900, lines=[Line("NW-FW-500", 1, 459_900)])
    await dispatch(services)
    async with db.session() as session:
        metrics = await vendor_metrics(
            session, tenant.principal(Role.VENDOR_ADMIN), start=datetime(2026, 3, 1, tzinfo=UTC),
            end=datetime(2026, 4, 1, tzinfo=UTC), currency="USD",
        )  # fmt: skip
    total = metrics.total
    # Margin 51% of 4,599.00 = 2,345.49; commission 10% (security) = 459.90.
    assert (total.revenue_minor, total.margin_minor, total.earnings_minor) == (
        459_900, 234_549, 45_990,
    )  # fmt: skip
    assert total.contribution_margin_minor == 188_559
    assert total.payout_ratio_bp == 1_000
    assert metrics.activation_rate_bp == 5_000  # one of two active partners sold
    assert metrics.concentration_bp == 10_000


async def test_a_bad_period_is_a_specific_error(gql: GQL, tenant: Tenant) -> None:
    payload = await gql(
        """{ earnings(period: {start: "2026-04-01T00:00:00Z", end: "2026-03-01T00:00:00Z"})
             { earned { amount } } }""",
        as_user=tenant.user(Role.PARTNER_ADMIN),
    )
    assert error_codes(payload) == ["INVALID_PERIOD"]
