"""Forecast, pipeline, guardrail and scorecard queries. Argument mistakes (a malformed
quarter, an unknown currency) are coded GraphQL errors naming the argument."""

from __future__ import annotations

import strawberry
from strawberry import Info

from forecasts import repository, rollup, scorecard, submission, velocity
from forecasts.errors import ForecastErrorCode
from forecasts.models import (
    ConcentrationAlert,
    ConcentrationThreshold,
    ForecastAccuracy,
    PartnerForecast,
)
from forecasts.policy import FORECASTS, ForecastOp
from forecasts.quarters import Quarter
from infra.errors import DomainError
from partners.access import accessible_partner_ids
from schema.context import Context
from schema.errors import query_error
from schema.forecasts.types import (
    ConcentrationAlertType,
    ConcentrationThresholdType,
    ForecastAccuracyType,
    ForecastDraftType,
    ForecastRollupType,
    PartnerForecastType,
    PartnerScorecardType,
    PipelineVelocityType,
    RollupByEnum,
)
from schema.permissions import allowed
from schema.relay import Connection, paginate, row_id


def _quarter_filter(quarter: str | None) -> str | None:
    if quarter is None:
        return None
    parsed = Quarter.parse(quarter)
    if parsed is None:
        raise query_error(
            DomainError(
                ForecastErrorCode.INVALID_QUARTER, "Give the quarter as YYYY-Qn.", "quarter"
            )
        )
    return parsed.key


@strawberry.type
class ForecastsQuery:
    @strawberry.field(
        permission_classes=[allowed(FORECASTS, ForecastOp.DRAFT)],
        description="A forecast pre-filled from your open deals closing in the quarter (and "
        "renewals due in it): commit = Σ value × stage probability, best case = Σ values.",
    )
    async def forecast_draft(
        self, info: Info[Context, None], quarter: str, currency: str = "USD"
    ) -> ForecastDraftType | None:
        ctx = info.context
        try:
            draft = await submission.draft(
                ctx.session, ctx.caller, ctx.services.clock, quarter=quarter, currency=currency,
                renewals=ctx.services.renewals_due,
            )  # fmt: skip
        except DomainError as error:
            raise query_error(error) from error
        return ForecastDraftType.of(draft)

    @strawberry.field(
        permission_classes=[allowed(FORECASTS, ForecastOp.READ)],
        description="Forecasts you may read (a partner admin: its own; vendor staff: their "
        "partners'), filtered by quarter and partner.",
    )
    async def forecasts(
        self,
        info: Info[Context, None],
        quarter: str | None = None,
        partner_id: strawberry.ID | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[PartnerForecastType] | None:
        stmt = repository.readable_forecasts(info.context.caller)
        if (key := _quarter_filter(quarter)) is not None:
            stmt = stmt.where(PartnerForecast.quarter == key)
        if partner_id is not None:
            stmt = stmt.where(PartnerForecast.partner_id == row_id(partner_id, "Partner"))
        return await paginate(
            info.context, stmt, first=first, after=after, to_node=PartnerForecastType.from_model
        )

    @strawberry.field(
        permission_classes=[allowed(FORECASTS, ForecastOp.ROLLUP)],
        description="Commit, best case, open pipeline (full and weighted) and revenue so far "
        "for a quarter, by partner, region or partner group. Vendor roles only.",
    )
    async def forecast_rollup(
        self,
        info: Info[Context, None],
        quarter: str,
        currency: str = "USD",
        by: RollupByEnum = rollup.RollupBy.PARTNER,  # type: ignore[valid-type]
    ) -> ForecastRollupType | None:
        ctx = info.context
        try:
            result = await rollup.rollup(
                ctx.session, ctx.caller, ctx.services.clock, quarter=quarter, currency=currency,
                by=by,
            )  # fmt: skip
        except DomainError as error:
            raise query_error(error) from error
        return ForecastRollupType.of(result)

    @strawberry.field(
        permission_classes=[allowed(FORECASTS, ForecastOp.ACCURACY)],
        description="Forecast accuracy recorded for closed quarters, newest first (a partner "
        "admin: its own; vendor staff: their partners').",
    )
    async def forecast_accuracy(
        self,
        info: Info[Context, None],
        partner_id: strawberry.ID | None = None,
        quarter: str | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[ForecastAccuracyType] | None:
        stmt = repository.readable_accuracy(info.context.caller)
        if (key := _quarter_filter(quarter)) is not None:
            stmt = stmt.where(ForecastAccuracy.quarter == key)
        if partner_id is not None:
            stmt = stmt.where(ForecastAccuracy.partner_id == row_id(partner_id, "Partner"))
        return await paginate(
            info.context, stmt, first=first, after=after, to_node=ForecastAccuracyType.of,
            descending=True,
        )  # fmt: skip

    @strawberry.field(
        permission_classes=[allowed(FORECASTS, ForecastOp.VELOCITY)],
        description="Pipeline velocity now (a partner admin: its own; vendor staff: their "
        "partners', or one partner's).",
    )
    async def pipeline_velocity(
        self,
        info: Info[Context, None],
        partner_id: strawberry.ID | None = None,
        currency: str = "USD",
    ) -> list[PipelineVelocityType] | None:
        ctx = info.context
        try:
            rows = await velocity.readable_velocities(
                ctx.session, ctx.caller, ctx.services.clock, currency=currency,
                partner_id=None if partner_id is None else row_id(partner_id, "Partner"),
            )  # fmt: skip
        except DomainError as error:
            raise query_error(error) from error
        return [PipelineVelocityType.of(p, v) for p, v in rows]

    @strawberry.field(
        permission_classes=[allowed(FORECASTS, ForecastOp.SCORECARD)],
        description="A partner's KPIs for a quarter; null when it is not a partner you may read.",
    )
    async def partner_scorecard(
        self,
        info: Info[Context, None],
        partner_id: strawberry.ID,
        quarter: str,
        currency: str = "USD",
    ) -> PartnerScorecardType | None:
        ctx = info.context
        try:
            card = await scorecard.scorecard(
                ctx.session, ctx.caller, ctx.services.clock,
                partner_id=row_id(partner_id, "Partner"), quarter=quarter, currency=currency,
            )  # fmt: skip
        except DomainError as error:
            raise query_error(error) from error
        return None if card is None else PartnerScorecardType.of(card)

    @strawberry.field(
        permission_classes=[allowed(FORECASTS, ForecastOp.THRESHOLDS_READ)],
        description="The vendor's concentration thresholds (removed ones only when asked).",
    )
    async def concentration_thresholds(
        self,
        info: Info[Context, None],
        include_removed: bool = False,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[ConcentrationThresholdType] | None:
        stmt = repository.readable_thresholds(info.context.caller)
        if not include_removed:
            stmt = stmt.where(ConcentrationThreshold.archived_at == None)  # noqa: E711
        return await paginate(
            info.context, stmt, first=first, after=after,
            to_node=ConcentrationThresholdType.from_model,
        )  # fmt: skip

    @strawberry.field(
        permission_classes=[allowed(FORECASTS, ForecastOp.ALERTS_READ)],
        description="Concentration alerts, newest first (one per threshold and quarter).",
    )
    async def concentration_alerts(
        self,
        info: Info[Context, None],
        quarter: str | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[ConcentrationAlertType] | None:
        ctx = info.context
        stmt = repository.readable_alerts(ctx.caller)
        if (key := _quarter_filter(quarter)) is not None:
            stmt = stmt.where(ConcentrationAlert.quarter == key)
        visible = set(await ctx.session.exec(accessible_partner_ids(ctx.caller)))
        return await paginate(
            ctx, stmt, first=first, after=after, descending=True,
            to_node=lambda a: ConcentrationAlertType.of(a, visible),
        )  # fmt: skip
