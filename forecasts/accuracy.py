"""Forecast accuracy, recorded when a quarter closes, and the read functions other domains
(the signal feed) use.

    actual   = the partner's revenue effective in the quarter, in the forecast's currency
               (``forecasts.actuals``; a negative total counts as 0)
    accuracy = 1 − |actual − commit| / max(actual, commit)    (1 when both are 0)
    bias     = (commit − actual) / actual                      (none when actual is 0)

both in basis points, rounded half away from zero (``earnings.rounding``). Accuracy is
between 0 and 10,000; a positive bias is an over-forecast, a negative one an
under-forecast. A quarter closes (clock-driven, ``run_forecast_closer`` beside the outbox
dispatcher) once it has ended and the sales recorded before its end are credited (at most
``SETTLE_GRACE`` later): each partner's accuracy is recorded once, with a
``ForecastAccuracyRecorded`` event."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, exists
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from earnings.ledger import CREDITED_TYPES
from earnings.rounding import BP, divide_rounded, ratio_bp
from forecasts.actuals import revenue_by_partner
from forecasts.events import ForecastAccuracyRecorded
from forecasts.models import ForecastAccuracy, ForecastQuarterClose, PartnerForecast
from forecasts.quarters import Quarter
from infra import passes
from infra.clock import Clock
from infra.db import Database
from infra.limits import int_output
from infra.outbox import OutboxEvent, record_event

log = logging.getLogger(__name__)

SETTLE_GRACE = timedelta(hours=1)


@dataclass(frozen=True)
class Score:
    accuracy_bp: int
    bias_bp: int | None


def score(commit_minor: int, actual_minor: int) -> Score:
    actual = max(actual_minor, 0)
    high = max(actual, commit_minor)
    accuracy = BP if high == 0 else BP - divide_rounded(abs(actual - commit_minor) * BP, high)
    # The bias has no natural bound (a million forecast, a cent sold); its column and the
    # GraphQL Int hold 32 bits, so it is kept at that bound: "at least this".
    bias = int_output(ratio_bp(commit_minor - actual, actual))
    return Score(accuracy_bp=max(accuracy, 0), bias_bp=bias)


# ------------------------------------------------------------------------ closing


async def _credits_pending(session: AsyncSession, vendor_id: uuid.UUID, before: datetime) -> bool:
    found = await session.exec(
        select(OutboxEvent.id)
        .where(
            col(OutboxEvent.dispatched_at).is_(None),
            col(OutboxEvent.discarded_at).is_(None),
            col(OutboxEvent.dead_at).is_(None),
            OutboxEvent.vendor_id == vendor_id,
            col(OutboxEvent.type).in_(list(CREDITED_TYPES)),
            OutboxEvent.occurred_at < before,
        )
        .limit(1)
    )
    return found.first() is not None


async def close_quarter(db: Database, clock: Clock, vendor_id: uuid.UUID, quarter: Quarter) -> bool:
    """Record the accuracy of every forecast the vendor's partners made for the quarter.
    Idempotent (one ``ForecastQuarterClose`` per vendor and quarter). False, recording
    nothing, while the quarter is not over or its sales still wait to be credited."""
    now = clock.now()
    if now < quarter.ends_at:
        return False
    async with db.transaction() as session:
        done = await session.exec(
            select(ForecastQuarterClose.id).where(
                ForecastQuarterClose.vendor_id == vendor_id,
                ForecastQuarterClose.quarter == quarter.key,
            )
        )
        if done.first() is not None:
            return True
        if now < quarter.ends_at + SETTLE_GRACE and await _credits_pending(
            session, vendor_id, quarter.ends_at
        ):
            return False
        forecasts = list(
            await session.exec(
                select(PartnerForecast).where(
                    PartnerForecast.vendor_id == vendor_id, PartnerForecast.quarter == quarter.key
                )
            )
        )
        actuals: dict[tuple[str, uuid.UUID], int] = {}
        for currency in {f.currency for f in forecasts}:
            per = await revenue_by_partner(
                session, vendor_id=vendor_id, currency=currency, start=quarter.starts_at,
                end=quarter.ends_at,
            )  # fmt: skip
            actuals.update({(currency, pid): amount for pid, amount in per.items()})
        for forecast in forecasts:
            actual = actuals.get((forecast.currency, forecast.partner_id), 0)
            s = score(forecast.commit_minor, actual)
            row = ForecastAccuracy(
                vendor_id=vendor_id, partner_id=forecast.partner_id, forecast_id=forecast.id,
                quarter=quarter.key, currency=forecast.currency,
                commit_minor=forecast.commit_minor, best_case_minor=forecast.best_case_minor,
                actual_minor=actual, accuracy_bp=s.accuracy_bp, bias_bp=s.bias_bp,
                recorded_at=now,
            )  # fmt: skip
            session.add(row)
            await session.flush()
            recorded = ForecastAccuracyRecorded(
                accuracy_id=row.id, partner_id=row.partner_id, quarter=row.quarter,
                currency=row.currency, commit_minor=row.commit_minor,
                actual_minor=row.actual_minor, accuracy_bp=row.accuracy_bp, bias_bp=row.bias_bp,
            )  # fmt: skip
            await record_event(
                session, clock, vendor_id=vendor_id, type=recorded.type,
                aggregate_id=row.partner_id, payload=recorded.to_payload(),
            )  # fmt: skip
        session.add(
            ForecastQuarterClose(
                vendor_id=vendor_id, quarter=quarter.key, partners=len(forecasts), closed_at=now
            )
        )
        await session.flush()
    return True


async def close_all_due(db: Database, clock: Clock) -> int:
    """One pass: close every (vendor, quarter) with forecasts whose quarter has ended and
    is not closed yet. Returns how many closed."""
    current = Quarter.of(clock.now()).key
    async with db.session() as session:
        pending = list(
            await session.exec(
                select(PartnerForecast.vendor_id, PartnerForecast.quarter)
                .where(
                    col(PartnerForecast.quarter) < current,
                    ~exists().where(
                        and_(
                            col(ForecastQuarterClose.vendor_id) == col(PartnerForecast.vendor_id),
                            col(ForecastQuarterClose.quarter) == col(PartnerForecast.quarter),
                        )
                    ),
                )
                .distinct()
            )
        )

    async def close(unit: tuple[uuid.UUID, str]) -> int:
        vendor_id, key = unit
        quarter = Quarter.parse(key)
        if quarter is None:  # pragma: no cover - written by Quarter.key only
            return 0
        return int(await close_quarter(db, clock, vendor_id, quarter))

    # IntegrityError: another process closed it first
    return await passes.each(
        "closing the forecast quarter (vendor, quarter)", pending, close,
        expected=(IntegrityError,),
    )  # fmt: skip


async def run_forecast_closer(db: Database, clock: Clock, interval: float = 5.0) -> None:
    """Close quarters as the clock ends them (inline in each API process, or in
    `channelboard dispatch`)."""
    while True:
        try:
            await close_all_due(db, clock)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("closing forecast quarters failed; retrying")
        await asyncio.sleep(interval)


# ------------------------------------------------------------- reads (signal feed)


async def accuracy_of(
    session: AsyncSession, vendor_id: uuid.UUID, partner_id: uuid.UUID, quarter: str
) -> ForecastAccuracy | None:
    """A partner's recorded accuracy for a quarter, if that quarter has closed."""
    found = await session.exec(
        select(ForecastAccuracy).where(
            ForecastAccuracy.vendor_id == vendor_id,
            ForecastAccuracy.partner_id == partner_id,
            ForecastAccuracy.quarter == quarter,
        )
    )
    return found.first()


async def accuracy_history(
    session: AsyncSession, vendor_id: uuid.UUID, partner_id: uuid.UUID, *, limit: int = 8
) -> list[ForecastAccuracy]:
    """A partner's latest recorded quarters, newest first."""
    rows = await session.exec(
        select(ForecastAccuracy)
        .where(ForecastAccuracy.vendor_id == vendor_id, ForecastAccuracy.partner_id == partner_id)
        .order_by(col(ForecastAccuracy.quarter).desc())
        .limit(limit)
    )
    return list(rows)


async def recorded_since(
    session: AsyncSession, vendor_id: uuid.UUID, since: datetime
) -> list[ForecastAccuracy]:
    """Every accuracy the vendor recorded at or after ``since``, oldest first (a feed)."""
    rows = await session.exec(
        select(ForecastAccuracy)
        .where(ForecastAccuracy.vendor_id == vendor_id, col(ForecastAccuracy.recorded_at) >= since)
        .order_by(col(ForecastAccuracy.recorded_at), col(ForecastAccuracy.id))
    )
    return list(rows)


async def accuracies_recorded(
    session: AsyncSession, vendor_id: uuid.UUID, partner_ids: Collection[uuid.UUID],
    until: datetime,
) -> list[ForecastAccuracy]:  # fmt: skip
    """The partners' accuracies recorded before ``until``, oldest first: the signal feed
    picks, for each day, the last one recorded by the day's end."""
    rows = await session.exec(
        select(ForecastAccuracy)
        .where(
            ForecastAccuracy.vendor_id == vendor_id,
            col(ForecastAccuracy.partner_id).in_(list(partner_ids)),
            col(ForecastAccuracy.recorded_at) < until,
        )
        .order_by(col(ForecastAccuracy.recorded_at), col(ForecastAccuracy.id))
    )
    return list(rows)
