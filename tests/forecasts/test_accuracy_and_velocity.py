"""Forecast accuracy when a quarter closes, and pipeline velocity (issue 14, items 3 and 4):
the closer records each partner's accuracy and bias once, after the quarter's sales are
credited, with an event for the signal feed; partners read their own figures, vendor staff
their partners', nobody another vendor's."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import col, select

from deal_registration.registrations.models import DealStatus
from forecasts import accuracy
from forecasts.events import FORECAST_ACCURACY_RECORDED
from forecasts.models import ForecastAccuracy
from infra.clock import OffsetClock
from infra.db import Database
from infra.limits import GRAPHQL_INT_MAX
from infra.outbox import OutboxEvent
from partners.roles import Role
from schema.context import Services
from tests.factories import Tenant, add_products, approve_sale, dispatch, gid
from tests.forecasts.scenarios import SUBMIT, add_deal, line, next_quarter
from tests.support import GQL, error_codes, eventually, refused_inserts

ACCURACY = """query($p: ID) { forecastAccuracy(partnerId: $p) { totalCount edges { node {
  partnerId quarter commit { amountMinor } actual { amountMinor } accuracyBp biasBp } } } }"""
VELOCITY = """query($p: ID) { pipelineVelocity(partnerId: $p) { partnerId openDeals wonDeals
  lostDeals winRateBp averageWonValue { amountMinor } cycleDays velocityPerDay { amountMinor }
} }"""


@pytest.mark.parametrize(
    ("commit", "actual", "accuracy_bp", "bias_bp"),
    [
        (100_000, 80_000, 8_000, 2_500),  # over-forecast by a quarter of what was sold
        (80_000, 100_000, 8_000, -2_000),  # under-forecast
        (50_000, 0, 0, None),  # nothing sold: no bias
        (0, 0, 10_000, None),  # nothing forecast, nothing sold: exact
        (0, 30_000, 0, -10_000),
        (10_000, -5_000, 0, None),  # reversals beyond sales count as nothing sold
        # A million forecast, a cent sold: the bias is "at least" the 32-bit bound (its
        # column and GraphQL's Int), not 10^12 bp (which failed the quarter's close).
        (100_000_000, 1, 0, GRAPHQL_INT_MAX),
    ],
)
def test_the_accuracy_formula(
    commit: int, actual: int, accuracy_bp: int, bias_bp: int | None
) -> None:
    assert accuracy.score(commit, actual) == accuracy.Score(accuracy_bp, bias_bp)


async def test_a_closing_quarter_records_each_forecast_once(
    gql: GQL, tenant: Tenant, other_tenant: Tenant, clock: OffsetClock, db: Database,
    services: Services,
) -> None:  # fmt: skip
    async with db.transaction() as session:
        await add_products(session, clock, tenant)
    q = next_quarter(clock)
    for partner, commit in ((0, "1000.00"), (1, "500.00")):
        result = await gql.data(
            SUBMIT, {"input": {"quarter": q.key, "lines": [line("Other", commit, commit)]}},
            as_user=tenant.user(Role.PARTNER_ADMIN, partner),
        )  # fmt: skip
        assert result["forecastSubmit"]["userErrors"] == []

    clock.advance(q.starts_at - clock.now() + timedelta(days=10))
    await approve_sale(db, clock, tenant, amount=800_00)
    await approve_sale(db, clock, tenant, amount=999_00, sold_at=q.starts_at - timedelta(days=1))
    await dispatch(services)
    async with services.outbox.paused():
        # A sale of the quarter's last minute still waits to be credited: no close yet.
        clock.advance(q.ends_at - clock.now() - timedelta(minutes=1))
        await approve_sale(db, clock, tenant, amount=100_00)
        clock.advance(timedelta(minutes=2))
        assert await accuracy.close_quarter(db, clock, tenant.vendor.id, q) is False
    await dispatch(services)
    await accuracy.close_all_due(db, clock)

    async with db.session() as session:
        rows = list(
            await session.exec(
                select(ForecastAccuracy).order_by(col(ForecastAccuracy.commit_minor))
            )
        )
        events = list(await session.exec(
            select(OutboxEvent).where(OutboxEvent.type == FORECAST_ACCURACY_RECORDED)
        ))  # fmt: skip
        mine = await accuracy.accuracy_of(session, tenant.vendor.id, tenant.partners[0].id, q.key)
    recorded = [
        (r.partner_id, r.commit_minor, r.actual_minor, r.accuracy_bp, r.bias_bp) for r in rows
    ]
    assert recorded == [
        (tenant.partners[1].id, 50_000, 0, 0, None),
        # 900.00 sold against 1,000.00: 1 − 100/1000; bias (1000 − 900) / 900.
        (tenant.partners[0].id, 100_000, 90_000, 9_000, 1_111),
    ]  # fmt: skip
    assert mine is not None
    assert mine.accuracy_bp == 9_000
    assert sorted(e.payload["accuracy_bp"] for e in events) == [0, 9_000]

    # Closing again changes nothing.
    clock.advance(timedelta(days=1))
    assert await accuracy.close_quarter(db, clock, tenant.vendor.id, q) is True
    async with db.session() as session:
        assert len(list(await session.exec(select(ForecastAccuracy)))) == 2

    async def partners_seen(user: Any, **variables: Any) -> list[str]:
        data = await gql.data(ACCURACY, variables, as_user=user)
        return sorted(e["node"]["partnerId"] for e in data["forecastAccuracy"]["edges"])

    p0, p1 = gid(tenant.partners[0]), gid(tenant.partners[1])
    assert await partners_seen(tenant.user(Role.PARTNER_ADMIN)) == [p0]
    assert await partners_seen(tenant.user(Role.PARTNER_ADMIN), p=p1) == []
    assert await partners_seen(tenant.user(Role.CHANNEL_MANAGER)) == [p0]
    assert await partners_seen(tenant.user(Role.VENDOR_ADMIN)) == sorted([p0, p1])
    assert await partners_seen(other_tenant.user(Role.VENDOR_ADMIN)) == []
    assert error_codes(await gql(ACCURACY, {})) == ["UNAUTHENTICATED"]
    rep = await gql(ACCURACY, {}, as_user=tenant.user(Role.PARTNER_REP))
    assert error_codes(rep) == ["FORBIDDEN"]


async def test_a_quarter_closes_whatever_the_bias(
    gql: GQL, tenant: Tenant, clock: OffsetClock, db: Database, services: Services
) -> None:
    """A partner forecast a million and sold a cent: its bias is beyond what the column and
    GraphQL's Int hold, and is recorded and shown at their bound, "at least this"; the
    quarter closes (on PostgreSQL the bias overflowed its column and the close failed
    every time the clock job tried it)."""
    q = next_quarter(clock)
    commit = "1000000.00"
    result = await gql.data(
        SUBMIT, {"input": {"quarter": q.key, "lines": [line("Other", commit, commit)]}},
        as_user=tenant.user(Role.PARTNER_ADMIN),
    )  # fmt: skip
    assert result["forecastSubmit"]["userErrors"] == []
    clock.advance(q.starts_at - clock.now() + timedelta(days=10))
    await approve_sale(db, clock, tenant, amount=1)
    await dispatch(services)
    clock.advance(q.ends_at - clock.now() + timedelta(days=1))
    await accuracy.close_all_due(db, clock)
    data = await gql.data(ACCURACY, {}, as_user=tenant.user(Role.VENDOR_ADMIN))
    [node] = [e["node"] for e in data["forecastAccuracy"]["edges"]]
    assert (node["actual"]["amountMinor"], node["accuracyBp"], node["biasBp"]) == (
        1, 0, GRAPHQL_INT_MAX,
    )  # fmt: skip


async def test_pipeline_velocity_per_partner(
    gql: GQL, tenant: Tenant, other_tenant: Tenant, clock: OffsetClock, db: Database
) -> None:
    now = clock.now()
    await add_deal(db, clock, tenant, status=DealStatus.APPROVED, value=1_000_00)
    await add_deal(db, clock, tenant, status=DealStatus.SUBMITTED, value=1_000_00)
    await add_deal(
        db,
        clock,
        tenant,
        status=DealStatus.WON,
        value=10_000_00,
        submitted_at=now - timedelta(days=50),
        closed_at=now - timedelta(days=30),
    )
    await add_deal(
        db,
        clock,
        tenant,
        status=DealStatus.WON,
        value=20_000_00,
        submitted_at=now - timedelta(days=60),
        closed_at=now - timedelta(days=20),
    )
    await add_deal(
        db,
        clock,
        tenant,
        status=DealStatus.LOST,
        value=5_000_00,
        submitted_at=now - timedelta(days=60),
        closed_at=now - timedelta(days=10),
    )
    # Outside the 365-day window: not counted.
    await add_deal(
        db,
        clock,
        tenant,
        status=DealStatus.LOST,
        value=5_000_00,
        submitted_at=now - timedelta(days=500),
        closed_at=now - timedelta(days=400),
    )
    # fmt: skip

    data = await gql.data(VELOCITY, as_user=tenant.user(Role.PARTNER_ADMIN))
    assert data["pipelineVelocity"] == [{
        "partnerId": gid(tenant.partners[0]), "openDeals": 2, "wonDeals": 2, "lostDeals": 1,
        "winRateBp": 6_667, "averageWonValue": {"amountMinor": 1_500_000}, "cycleDays": 30.0,
        # 2 open × 2/3 × 15,000.00 ÷ 30 days = 666.67 a day
        "velocityPerDay": {"amountMinor": 66_667},
    }]  # fmt: skip

    async def partners_seen(user: Any, **variables: Any) -> list[str]:
        rows = (await gql.data(VELOCITY, variables, as_user=user))["pipelineVelocity"]
        return sorted(r["partnerId"] for r in rows)

    p0, p1 = gid(tenant.partners[0]), gid(tenant.partners[1])
    assert await partners_seen(tenant.user(Role.PARTNER_ADMIN, 1)) == [p1]
    assert await partners_seen(tenant.user(Role.PARTNER_ADMIN, 1), p=p0) == []
    assert await partners_seen(tenant.user(Role.CHANNEL_MANAGER)) == [p0]
    assert await partners_seen(tenant.user(Role.FINANCE)) == sorted([p0, p1])
    assert await partners_seen(other_tenant.user(Role.VENDOR_ADMIN), p=p0) == []
    none = await gql.data(VELOCITY, {"p": p1}, as_user=tenant.user(Role.VENDOR_ADMIN))
    assert none["pipelineVelocity"][0]["velocityPerDay"] is None
    assert error_codes(await gql(VELOCITY, {})) == ["UNAUTHENTICATED"]
    rep = await gql(VELOCITY, {}, as_user=tenant.user(Role.PARTNER_REP))
    assert error_codes(rep) == ["FORBIDDEN"]
    bad = await gql('{ pipelineVelocity(currency: "ZZZ") { openDeals } }',
                    as_user=tenant.user(Role.VENDOR_ADMIN))  # fmt: skip
    assert error_codes(bad) == ["INVALID_CURRENCY"]


@pytest.mark.slow
async def test_the_app_closes_quarters_by_the_clock(
    gql: GQL, tenant: Tenant, clock: OffsetClock, db: Database
) -> None:
    """Nobody calls the closer: the app's own (beside its outbox dispatcher) records the
    accuracy once the clock has passed the quarter's end."""
    q = next_quarter(clock)
    result = await gql.data(
        SUBMIT, {"input": {"quarter": q.key, "lines": [line("Other", "10.00", "10.00")]}},
        as_user=tenant.user(Role.PARTNER_ADMIN),
    )  # fmt: skip
    assert result["forecastSubmit"]["userErrors"] == []
    clock.advance(q.ends_at - clock.now() + timedelta(minutes=5))

    async def recorded() -> bool:
        async with db.session() as session:
            return (
                await accuracy.accuracy_of(session, tenant.vendor.id, tenant.partners[0].id, q.key)
                is not None
            )

    await eventually(recorded, within=15)
    data = await gql.data(ACCURACY, {}, as_user=tenant.user(Role.PARTNER_ADMIN))
    node = data["forecastAccuracy"]["edges"][0]["node"]
    assert (node["accuracyBp"], node["biasBp"], node["actual"]) == (0, None, {"amountMinor": 0})


async def test_a_vendor_whose_quarter_cannot_close_does_not_stop_the_others(
    gql: GQL, tenant: Tenant, other_tenant: Tenant, clock: OffsetClock, db: Database,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """One vendor's close fails in the database, every time: the closer's pass still closes
    the other vendor's quarter, and the first once the fault is gone."""
    q = next_quarter(clock)
    for t in (tenant, other_tenant):
        result = await gql.data(
            SUBMIT, {"input": {"quarter": q.key, "lines": [line("Other", "10.00", "10.00")]}},
            as_user=t.user(Role.PARTNER_ADMIN),
        )  # fmt: skip
        assert result["forecastSubmit"]["userErrors"] == []
    clock.advance(q.ends_at - clock.now() + timedelta(minutes=5))

    async def recorded(t: Tenant) -> bool:
        async with db.session() as session:
            found = await accuracy.accuracy_of(session, t.vendor.id, t.partners[0].id, q.key)
        return found is not None

    async with refused_inserts(db, "forecast_quarter_close", tenant.vendor.id):
        await accuracy.close_all_due(db, clock)  # (the app's closer may have been first)
        assert await recorded(other_tenant)
        assert not await recorded(tenant)
    assert str(tenant.vendor.id) in caplog.text  # logged with the vendor, then went on
    await accuracy.close_all_due(db, clock)
    assert await recorded(tenant)
