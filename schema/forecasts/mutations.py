"""Forecast and guardrail mutations: `forecastSubmit` (a partner admin, for its own
partner), `concentrationThresholdSet` and `concentrationThresholdRemove` (vendor admins)."""

from __future__ import annotations

from typing import ClassVar, Self

import strawberry
from strawberry import Info

from forecasts import guardrails, submission
from forecasts.errors import ForecastErrorCode, GuardrailErrorCode
from forecasts.models import ConcentrationThreshold, PartnerForecast
from forecasts.policy import FORECASTS, ForecastOp
from schema.context import Context
from schema.errors import UserError
from schema.forecasts.types import (
    ConcentrationThresholdType,
    GuardrailScopeEnum,
    PartnerForecastType,
    ShareBasisEnum,
    ShareMetricEnum,
)
from schema.money import MoneyInput
from schema.mutations import Payload, Write, run
from schema.permissions import allowed
from schema.relay import parse_global_id


@strawberry.type
class ForecastError(UserError):
    code: ForecastErrorCode
    amount_code: ClassVar = ForecastErrorCode.INVALID_AMOUNT


@strawberry.type
class GuardrailError(UserError):
    code: GuardrailErrorCode


@strawberry.input
class ForecastLineInput:
    product_line: str = strawberry.field(
        description="A product line of the vendor's catalogue (a product category), or 'Other'."
    )
    commit: MoneyInput = strawberry.field(description="What the partner commits to close.")
    best_case: MoneyInput = strawberry.field(description="At least the commit.")


@strawberry.input
class ForecastSubmitInput:
    quarter: str = strawberry.field(description="YYYY-Qn; a quarter that has not started.")
    currency: str = "USD"
    lines: list[ForecastLineInput] = strawberry.field(default_factory=list)
    prefill: bool = strawberry.field(
        default=False,
        description="Fill the product lines not given from your open deals (and renewals due).",
    )
    note: str = ""


@strawberry.type
class ForecastSubmitPayload(Payload[PartnerForecast], errors=ForecastError):
    forecast: PartnerForecastType | None = None
    user_errors: list[ForecastError] = strawberry.field(default_factory=list)

    @classmethod
    def of(cls, result: PartnerForecast, write: Write) -> Self:
        return cls(forecast=PartnerForecastType.from_model(result))


@strawberry.input
class ConcentrationThresholdSetInput:
    metric: ShareMetricEnum  # type: ignore[valid-type]
    max_share_bp: int = strawberry.field(description="1..10000: a share above it crosses it.")
    basis: ShareBasisEnum = ShareBasisEnum.REVENUE  # type: ignore[valid-type]
    scope: GuardrailScopeEnum = GuardrailScopeEnum.OVERALL  # type: ignore[valid-type]
    scope_value: str = strawberry.field(
        default="", description="The region, or the partner group's id (REGION, GROUP)."
    )
    top_n: int | None = strawberry.field(default=None, description="N for TOP_N_SHARE.")
    currency: str = "USD"
    reason: str | None = None


@strawberry.input
class ConcentrationThresholdRemoveInput:
    id: strawberry.ID
    reason: str | None = None


@strawberry.type
class ConcentrationThresholdPayload(Payload[ConcentrationThreshold], errors=GuardrailError):
    threshold: ConcentrationThresholdType | None = None
    user_errors: list[GuardrailError] = strawberry.field(default_factory=list)

    @classmethod
    def of(cls, result: ConcentrationThreshold, write: Write) -> Self:
        return cls(threshold=ConcentrationThresholdType.from_model(result))


@strawberry.type
class ForecastsMutation:
    @strawberry.mutation(
        permission_classes=[allowed(FORECASTS, ForecastOp.SUBMIT)],
        description="Submit or revise your partner's forecast for a quarter that has not "
        "started (each submission is kept as a revision).",
    )
    async def forecast_submit(
        self, info: Info[Context, None], input: ForecastSubmitInput
    ) -> ForecastSubmitPayload:
        async def action(m: Write) -> PartnerForecast:
            lines = []
            for i, line in enumerate(input.lines):
                commit = m.money(line.commit, f"lines.{i}.commit")
                best = m.money(line.best_case, f"lines.{i}.best_case")
                lines.append(submission.LineInput(
                    line.product_line, commit.minor, commit.currency, best.minor, best.currency
                ))  # fmt: skip
            return await submission.submit(
                m.session, m.principal, m.clock, quarter=input.quarter, currency=input.currency,
                lines=lines, prefill=input.prefill, note=input.note,
                renewals=m.services.renewals_due,
            )  # fmt: skip

        return await run(info, ForecastSubmitPayload, action)

    @strawberry.mutation(
        permission_classes=[allowed(FORECASTS, ForecastOp.THRESHOLD_SET)],
        description="Set a concentration threshold (or change its limit); audited, and "
        "checked against the quarter so far.",
    )
    async def concentration_threshold_set(
        self, info: Info[Context, None], input: ConcentrationThresholdSetInput
    ) -> ConcentrationThresholdPayload:
        async def action(m: Write) -> ConcentrationThreshold:
            value = input.scope_value
            if input.scope is GuardrailScopeEnum.GROUP and value.strip():
                group_id = parse_global_id(value.strip(), "PartnerGroup")
                value = str(group_id) if group_id is not None else "-"
            return await guardrails.set_threshold(
                m.session, m.principal, m.clock, metric=input.metric, basis=input.basis,
                scope=input.scope, max_share_bp=input.max_share_bp, currency=input.currency,
                top_n=input.top_n, scope_value=value, reason=input.reason,
            )  # fmt: skip

        return await run(info, ConcentrationThresholdPayload, action)

    @strawberry.mutation(
        permission_classes=[allowed(FORECASTS, ForecastOp.THRESHOLD_REMOVE)],
        description="Stop checking a threshold (kept, with its alerts).",
    )
    async def concentration_threshold_remove(
        self, info: Info[Context, None], input: ConcentrationThresholdRemoveInput
    ) -> ConcentrationThresholdPayload:
        return await run(info, ConcentrationThresholdPayload, lambda m: guardrails.remove_threshold(
            m.session, m.principal, m.clock,
            threshold_id=m.id(input.id, "ConcentrationThreshold"), reason=input.reason,
        ))  # fmt: skip
