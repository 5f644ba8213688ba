from __future__ import annotations

import uuid
from datetime import datetime

import strawberry
from strawberry import Info

from earnings import forecast, metrics, repository, service
from earnings.errors import EarningsErrorCode as Code
from earnings.models import EntryKind, PayoutStatus
from earnings.policy import EARNINGS, EarningsOp
from earnings.repository import Scope
from infra.db import DbSession
from infra.errors import DomainError
from partners.roles import Principal
from schema.context import Context
from schema.earnings.inputs import EarningsPeriodInput
from schema.earnings.types import (
    EarningEntryType,
    EarningsSummaryType,
    ForecastType,
    MetricsSegmentationEnum,
    PayoutStatementType,
    ProgramType,
    VendorMetricsType,
)
from schema.errors import query_error
from schema.money import MoneyInput
from schema.permissions import IsAuthenticated, allowed
from schema.relay import Connection, paginate, row_id


def _period(ctx: Context, period: EarningsPeriodInput | None) -> tuple[datetime, datetime]:
    if period is None:
        return service.current_month(ctx.services.clock)
    try:
        service.check_period(period.start, period.end)
    except DomainError as error:
        raise query_error(error) from error
    return period.start, period.end


def _id(value: strawberry.ID | None, type_name: str) -> uuid.UUID | None:
    """The row id; None when not given (a malformed one matches nothing: schema.relay.row_id)."""
    return None if value is None else row_id(value, type_name)


async def scope_for(
    session: DbSession,
    principal: Principal,
    partner_id: strawberry.ID | None,
    rep_id: strawberry.ID | None,
) -> Scope | None:
    return await repository.resolve_scope(
        session, principal, partner_id=_id(partner_id, "Partner"), rep_user_id=_id(rep_id, "User")
    )


@strawberry.type
class EarningsQuery:
    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="Earnings of a partner (or one of its reps) over a period: earned, "
        "pending, held, paid, tier, change and explanations. Partner users get their own "
        "(a rep: what is attributed to it); null for a partner or rep you may not see.",
    )
    async def earnings(
        self,
        info: Info[Context, None],
        partner_id: strawberry.ID | None = None,
        rep_id: strawberry.ID | None = None,
        period: EarningsPeriodInput | None = None,
        currency: str | None = None,
    ) -> EarningsSummaryType | None:
        ctx = info.context
        principal = ctx.caller
        start, end = _period(ctx, period)
        scope = await scope_for(ctx.session, principal, partner_id, rep_id)
        if scope is None:
            return None
        try:
            summary = await service.summary(
                ctx.session, principal, ctx.services.clock, scope=scope, start=start, end=end,
                currency=currency.strip().upper() if currency else None,
                signals=ctx.services.claim_signals,
            )  # fmt: skip
        except DomainError as error:
            raise query_error(error) from error
        return EarningsSummaryType.of(summary, principal)

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="Ledger entries you may see, oldest first; narrow by partner, rep, "
        "period (booked) and kind.",
    )
    async def earning_entries(
        self,
        info: Info[Context, None],
        first: int | None = None,
        after: str | None = None,
        partner_id: strawberry.ID | None = None,
        rep_id: strawberry.ID | None = None,
        period: EarningsPeriodInput | None = None,
        kind: EntryKind | None = None,
    ) -> Connection[EarningEntryType] | None:
        ctx = info.context
        principal = ctx.caller
        start, end = _period(ctx, period) if period is not None else (None, None)
        stmt = repository.entries_matching(
            principal, partner_id=_id(partner_id, "Partner"), rep_user_id=_id(rep_id, "User"),
            booked_from=start, booked_before=end, kind=kind,
        )  # fmt: skip
        return await paginate(
            ctx, stmt, first=first, after=after,
            to_node=EarningEntryType.from_model,
        )  # fmt: skip

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="Monthly payout statements you may see (partner admins: their own; reps "
        "see none, statements are the organisation's).",
    )
    async def payouts(
        self,
        info: Info[Context, None],
        first: int | None = None,
        after: str | None = None,
        partner_id: strawberry.ID | None = None,
        status: PayoutStatus | None = None,
    ) -> Connection[PayoutStatementType] | None:
        ctx = info.context
        principal = ctx.caller
        stmt = repository.statements_matching(
            principal, partner_id=_id(partner_id, "Partner"), status=status
        )
        return await paginate(
            ctx, stmt, first=first, after=after,
            to_node=PayoutStatementType.from_model,
        )  # fmt: skip

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="The projected tier and payout of one more sale under the current "
        "program; null when no program is in force for the currency.",
    )
    async def earnings_forecast(
        self,
        info: Info[Context, None],
        additional_revenue: MoneyInput,
        sku: str | None = None,
        units: int = 1,
        partner_id: strawberry.ID | None = None,
    ) -> ForecastType | None:
        ctx = info.context
        principal = ctx.caller
        try:
            amount = additional_revenue.parse("additional_revenue", Code.INVALID_AMOUNT)
        except DomainError as error:
            raise query_error(error) from error
        scope = await scope_for(ctx.session, principal, partner_id, None)
        if scope is None:
            return None
        try:
            result = await forecast.forecast(
                ctx.session, ctx.services.clock, scope=scope, additional_revenue_minor=amount.minor,
                currency=amount.currency, sku=sku, units=units, signals=ctx.services.claim_signals,
            )  # fmt: skip
        except DomainError as error:
            raise query_error(error) from error
        return ForecastType.of(result) if result else None

    @strawberry.field(
        permission_classes=[allowed(EARNINGS, EarningsOp.READ_METRICS)],
        description="Contribution margin, payout ratio, activation, concentration and "
        "volatility, per partner and in total, and revenue by region, product line or partner "
        "group (segmentBy). Vendor roles only (channel managers: their assigned partners).",
    )
    async def earnings_metrics(
        self,
        info: Info[Context, None],
        period: EarningsPeriodInput | None = None,
        currency: str = "USD",
        segment_by: MetricsSegmentationEnum | None = None,  # type: ignore[valid-type]
    ) -> VendorMetricsType | None:
        ctx = info.context
        principal = ctx.caller
        start, end = _period(ctx, period)
        try:
            result = await metrics.vendor_metrics(
                ctx.session, principal, start=start, end=end, currency=currency.strip().upper(),
                segment_by=segment_by,
            )  # fmt: skip
        except DomainError as error:
            raise query_error(error) from error
        return VendorMetricsType.of(result)

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="Your vendor's rev-share programs with every version of their rules.",
    )
    async def earning_programs(
        self, info: Info[Context, None], first: int | None = None, after: str | None = None
    ) -> Connection[ProgramType] | None:
        ctx = info.context
        principal = ctx.caller
        return await paginate(
            ctx, await repository.readable_programs(ctx.session, principal), first=first,
            after=after, to_node=ProgramType.of,
        )  # fmt: skip
