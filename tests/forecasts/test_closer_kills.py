"""The forecast quarter close (a clock job of `channelboard dispatch`, a transaction per
vendor and quarter) in a real dispatcher SIGKILLed inside the second vendor's close (its
accuracy rows and events written, uncommitted; the first vendor's committed), then a new
dispatcher: every forecast's accuracy is recorded once, with one event each, and each
vendor's quarter is closed once, as an uninterrupted close leaves them."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from sqlmodel import col, select

from api.settings import Settings
from forecasts import accuracy
from forecasts.events import FORECAST_ACCURACY_RECORDED
from forecasts.models import ForecastAccuracy, ForecastQuarterClose, PartnerForecast
from forecasts.quarters import Quarter
from infra.clock import OffsetClock
from infra.db import Database
from infra.outbox import OutboxEvent
from tests.factories import Tenant
from tests.processes import KILLED, cli_killed_at, cli_process
from tests.support import eventually

pytestmark = pytest.mark.slow


async def test_a_dispatcher_killed_inside_a_quarter_close_closes_each_forecast_once(
    settings: Settings, db: Database, clock: OffsetClock, tenant: Tenant, other_tenant: Tenant
) -> None:
    clock.reset()  # the dispatcher runs on the real clock
    quarter = Quarter.of(clock.now()).previous()
    made = clock.now() - timedelta(days=200)
    commits: dict[object, int] = {}
    async with db.transaction() as session:
        for t in (tenant, other_tenant):
            for n, partner in enumerate(t.partners):
                forecast = PartnerForecast(
                    vendor_id=t.vendor.id, partner_id=partner.id, quarter=quarter.key,
                    currency="USD", commit_minor=100_000 * (n + 1),
                    best_case_minor=150_000 * (n + 1), lines=[], created_at=made,
                    updated_at=made,
                )  # fmt: skip
                session.add(forecast)
                commits[forecast.id] = forecast.commit_minor
    vendors = {tenant.vendor.id, other_tenant.vendor.id}
    # The test's clock (the clock jobs of this process's app, if one runs, read it) inside
    # the quarter: only the dispatcher processes close it.
    clock.freeze(quarter.ends_at - timedelta(days=1))

    # Killed just before the second close's row: the first vendor's close committed.
    code, output = await cli_killed_at(
        settings, "INSERT INTO forecast_quarter_close", 2, "dispatch"
    )
    assert code == KILLED, output

    async def closes() -> list[ForecastQuarterClose]:
        async with db.session() as session:
            return list(
                await session.exec(
                    select(ForecastQuarterClose).where(
                        col(ForecastQuarterClose.vendor_id).in_(vendors)
                    )
                )
            )

    assert len(await closes()) == 1

    async with cli_process(settings, "dispatch"):

        async def closed() -> bool:
            return len(await closes()) == 2

        await eventually(closed, within=60)

    async with db.session() as session:
        rows = list(
            await session.exec(
                select(ForecastAccuracy).where(col(ForecastAccuracy.vendor_id).in_(vendors))
            )
        )
        events = Counter(
            e.payload["accuracy_id"]
            for e in await session.exec(
                select(OutboxEvent).where(
                    OutboxEvent.type == FORECAST_ACCURACY_RECORDED,
                    col(OutboxEvent.vendor_id).in_(vendors),
                )
            )
        )
    assert sorted(r.forecast_id for r in rows) == sorted(commits)  # each once
    assert events == {str(r.id): 1 for r in rows}
    for r in rows:  # nothing sold in the quarter
        score = accuracy.score(commits[r.forecast_id], 0)
        assert (r.actual_minor, r.accuracy_bp, r.bias_bp) == (0, score.accuracy_bp, score.bias_bp)
    assert sorted(c.partners for c in await closes()) == [
        len(tenant.partners),
        len(other_tenant.partners),
    ]
