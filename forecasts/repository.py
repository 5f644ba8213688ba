"""Which forecasts, revisions, accuracy records, thresholds and alerts a caller may read:
every statement composes the access predicate (``partners.access.scope``); partner reps
read none of these organisation-level records (``RepAccess.NONE``)."""

from __future__ import annotations

import uuid

from sqlalchemy import false
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from forecasts.models import (
    ConcentrationAlert,
    ConcentrationThreshold,
    ForecastAccuracy,
    ForecastRevision,
    PartnerForecast,
)
from forecasts.policy import FORECASTS, ForecastOp
from infra.pages import by_ids
from partners.access import RepAccess, scope
from partners.roles import Principal


def readable_forecasts(principal: Principal) -> SelectOfScalar[PartnerForecast]:
    if not FORECASTS.allows(principal, ForecastOp.READ):
        return select(PartnerForecast).where(false())
    return select(PartnerForecast).where(
        scope(principal, PartnerForecast.vendor_id, PartnerForecast.partner_id, RepAccess.NONE)
    )


def readable_revisions(principal: Principal) -> SelectOfScalar[ForecastRevision]:
    if not FORECASTS.allows(principal, ForecastOp.READ):
        return select(ForecastRevision).where(false())
    return select(ForecastRevision).where(
        scope(principal, ForecastRevision.vendor_id, ForecastRevision.partner_id, RepAccess.NONE)
    )


def readable_accuracy(principal: Principal) -> SelectOfScalar[ForecastAccuracy]:
    if not FORECASTS.allows(principal, ForecastOp.ACCURACY):
        return select(ForecastAccuracy).where(false())
    return select(ForecastAccuracy).where(
        scope(principal, ForecastAccuracy.vendor_id, ForecastAccuracy.partner_id, RepAccess.NONE)
    )


def readable_thresholds(principal: Principal) -> SelectOfScalar[ConcentrationThreshold]:
    if not FORECASTS.allows(principal, ForecastOp.THRESHOLDS_READ):
        return select(ConcentrationThreshold).where(false())
    return select(ConcentrationThreshold).where(
        ConcentrationThreshold.vendor_id == principal.vendor_id
    )


def readable_alerts(principal: Principal) -> SelectOfScalar[ConcentrationAlert]:
    if not FORECASTS.allows(principal, ForecastOp.ALERTS_READ):
        return select(ConcentrationAlert).where(false())
    return select(ConcentrationAlert).where(ConcentrationAlert.vendor_id == principal.vendor_id)


async def forecasts_by_ids(
    session: AsyncSession, principal: Principal, ids: list[uuid.UUID]
) -> dict[uuid.UUID, PartnerForecast]:
    return await by_ids(session, readable_forecasts(principal), ids)


async def revisions_of(
    session: AsyncSession, principal: Principal, forecast_id: uuid.UUID
) -> list[ForecastRevision]:
    rows = await session.exec(
        readable_revisions(principal)
        .where(ForecastRevision.forecast_id == forecast_id)
        .order_by(col(ForecastRevision.number))
    )
    return list(rows)


async def thresholds_by_ids(
    session: AsyncSession, principal: Principal, ids: list[uuid.UUID]
) -> dict[uuid.UUID, ConcentrationThreshold]:
    return await by_ids(session, readable_thresholds(principal), ids)
