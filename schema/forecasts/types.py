"""GraphQL types for forecasts, pipeline velocity, the roll-up, concentration guardrails
and the partner scorecard. Vendor-only scorecard figures sit behind field permissions and
are left out (None) of the objects built for partner roles."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import strawberry
from strawberry import Info, relay

from forecasts import repository
from forecasts.models import (
    ConcentrationAlert,
    ConcentrationThreshold,
    ForecastAccuracy,
    ForecastRevision,
    GuardrailScope,
    PartnerForecast,
    ShareBasis,
    ShareMetric,
)
from forecasts.rollup import Rollup, RollupBy, RollupRow
from forecasts.scorecard import Scorecard
from forecasts.submission import Draft
from forecasts.velocity import Velocity
from infra.limits import int_output
from partners.models import Partner
from schema.context import Context
from schema.money import MoneyType
from schema.permissions import VendorStaff
from schema.relay import to_global_id, visible_nodes

ShareMetricEnum = strawberry.enum(
    ShareMetric, description="TOP_PARTNER_SHARE: the largest partner; TOP_N_SHARE: the N largest."
)
ShareBasisEnum = strawberry.enum(ShareBasis, description="What the share is of.")
GuardrailScopeEnum = strawberry.enum(
    GuardrailScope, description="Every partner, one region's, or one partner group's members."
)
RollupByEnum = strawberry.enum(RollupBy, name="ForecastRollupBy")


@strawberry.type(name="ForecastLine", description="One product line of a forecast.")
class ForecastLineType:
    product_line: str
    commit: MoneyType
    best_case: MoneyType

    @classmethod
    def of(cls, line: dict[str, Any], currency: str) -> ForecastLineType:
        return cls(
            product_line=str(line["product_line"]),
            commit=MoneyType.of(int(line["commit_minor"]), currency),
            best_case=MoneyType.of(int(line["best_case_minor"]), currency),
        )


@strawberry.type(name="ForecastRevision", description="One submission, kept as it was.")
class ForecastRevisionType:
    number: int
    commit: MoneyType
    best_case: MoneyType
    lines: list[ForecastLineType]
    prefilled: bool = strawberry.field(description="Some lines came from the pre-fill.")
    note: str
    submitted_by_id: relay.GlobalID | None
    submitted_at: datetime

    @classmethod
    def of(cls, r: ForecastRevision) -> ForecastRevisionType:
        return cls(
            number=r.number,
            commit=MoneyType.of(r.commit_minor, r.currency),
            best_case=MoneyType.of(r.best_case_minor, r.currency),
            lines=[ForecastLineType.of(ln, r.currency) for ln in r.lines],
            prefilled=r.prefilled,
            note=r.note,
            submitted_by_id=to_global_id("User", r.submitted_by_id) if r.submitted_by_id else None,
            submitted_at=r.submitted_at,
        )


@strawberry.type(
    name="PartnerForecast",
    description="A partner's forecast for a quarter: its latest revision's figures.",
)
class PartnerForecastType(relay.Node):
    id: relay.NodeID[str]
    partner_id: relay.GlobalID
    quarter: str
    commit: MoneyType
    best_case: MoneyType
    lines: list[ForecastLineType]
    revision: int = strawberry.field(description="How many times it was submitted.")
    updated_at: datetime

    resolve_nodes = visible_nodes(repository.forecasts_by_ids)

    @strawberry.field(description="Every revision, oldest first.")
    async def revisions(self, info: Info[Context, None]) -> list[ForecastRevisionType]:
        rows = await repository.revisions_of(
            info.context.session, info.context.caller, uuid.UUID(self.id)
        )
        return [ForecastRevisionType.of(r) for r in rows]

    @classmethod
    def from_model(cls, f: PartnerForecast) -> PartnerForecastType:
        return cls(
            id=str(f.id),
            partner_id=to_global_id("Partner", f.partner_id),
            quarter=f.quarter,
            commit=MoneyType.of(f.commit_minor, f.currency),
            best_case=MoneyType.of(f.best_case_minor, f.currency),
            lines=[ForecastLineType.of(ln, f.currency) for ln in f.lines],
            revision=f.revision,
            updated_at=f.updated_at,
        )


@strawberry.type(name="ForecastDraftLine")
class ForecastDraftLineType:
    product_line: str
    commit: MoneyType = strawberry.field(description="Σ value × stage probability (renewals too).")
    best_case: MoneyType = strawberry.field(description="Σ full values.")
    deals: int = strawberry.field(description="Open deals contributing to the line.")
    renewals: int = strawberry.field(description="Renewals due contributing to the line.")


@strawberry.type(
    name="ForecastDraft",
    description="What the partner's open deals closing in the quarter (and renewals due in "
    "it) suggest; submit it with forecastSubmit(prefill: true) or adjust it first.",
)
class ForecastDraftType:
    quarter: str
    currency: str
    lines: list[ForecastDraftLineType]
    renewals_included: bool = strawberry.field(
        description="False while no subscriptions domain is wired: deals only."
    )

    @classmethod
    def of(cls, d: Draft) -> ForecastDraftType:
        c = d.currency
        return cls(
            quarter=d.quarter.key,
            currency=c,
            renewals_included=d.renewals_included,
            lines=[
                ForecastDraftLineType(
                    product_line=ln.product_line,
                    commit=MoneyType.of(ln.commit_minor, c),
                    best_case=MoneyType.of(ln.best_case_minor, c),
                    deals=ln.deals,
                    renewals=ln.renewals,
                )
                for ln in d.lines
            ],
        )


@strawberry.type(name="ForecastAccuracy", description="Recorded when the quarter closed.")
class ForecastAccuracyType(relay.Node):
    id: relay.NodeID[str]
    partner_id: relay.GlobalID
    quarter: str
    commit: MoneyType
    best_case: MoneyType
    actual: MoneyType = strawberry.field(description="Revenue effective in the quarter.")
    accuracy_bp: int = strawberry.field(
        description="1 − |actual − commit| / max(actual, commit), in basis points (0..10000)."
    )
    bias_bp: int | None = strawberry.field(
        description="(commit − actual) / actual in basis points: positive = over-forecast; "
        "null when nothing was sold. "
        "At most ±2147483647 (a 32-bit Int): a ratio past it shows the bound."
    )
    recorded_at: datetime

    resolve_nodes = visible_nodes(None)

    @classmethod
    def of(cls, a: ForecastAccuracy) -> ForecastAccuracyType:
        c = a.currency
        return cls(
            id=str(a.id),
            partner_id=to_global_id("Partner", a.partner_id),
            quarter=a.quarter,
            commit=MoneyType.of(a.commit_minor, c),
            best_case=MoneyType.of(a.best_case_minor, c),
            actual=MoneyType.of(a.actual_minor, c),
            accuracy_bp=a.accuracy_bp,
            bias_bp=int_output(a.bias_bp),
            recorded_at=a.recorded_at,
        )


@strawberry.type(
    name="PipelineVelocity",
    description="open deals × win rate × average won value ÷ average cycle (days), per day; "
    "win rate, value and cycle over deals closed in the last 365 days.",
)
class PipelineVelocityType:
    partner_id: relay.GlobalID
    partner_name: str
    currency: str
    open_deals: int
    open_value: MoneyType
    won_deals: int
    lost_deals: int
    win_rate_bp: int | None
    average_won_value: MoneyType | None
    cycle_days: float | None = strawberry.field(description="Mean days from submission to won.")
    velocity_per_day: MoneyType | None = strawberry.field(
        description="Null when no deal was won or lost in the window."
    )

    @classmethod
    def of(cls, partner: Partner, v: Velocity) -> PipelineVelocityType:
        c = v.currency
        avg = v.average_won_minor
        per_day = v.velocity_minor_per_day
        return cls(
            partner_id=to_global_id("Partner", partner.id),
            partner_name=partner.name,
            currency=c,
            open_deals=v.open_deals,
            open_value=MoneyType.of(v.open_value_minor, c),
            won_deals=v.won,
            lost_deals=v.lost,
            win_rate_bp=v.win_rate_bp,
            average_won_value=None if avg is None else MoneyType.of(avg, c),
            cycle_days=v.cycle_days,
            velocity_per_day=None if per_day is None else MoneyType.of(per_day, c),
        )


@strawberry.type(name="ForecastRollupRow")
class ForecastRollupRowType:
    key: str = strawberry.field(
        description="The partner's or group's global id, or the region; empty for the total."
    )
    label: str
    partners: int
    forecasts: int = strawberry.field(description="Partners that submitted a forecast.")
    commit: MoneyType
    best_case: MoneyType
    open_deals: int
    pipeline: MoneyType = strawberry.field(description="Open deals closing in the quarter.")
    weighted_pipeline: MoneyType = strawberry.field(description="Σ value × stage probability.")
    actual: MoneyType = strawberry.field(description="Revenue so far in the quarter.")

    @classmethod
    def of(cls, r: RollupRow, currency: str, by: RollupBy | None) -> ForecastRollupRowType:
        key = r.key
        if by is RollupBy.PARTNER:
            key = str(to_global_id("Partner", uuid.UUID(r.key)))
        elif by is RollupBy.GROUP:
            key = str(to_global_id("PartnerGroup", uuid.UUID(r.key)))
        m = MoneyType.of
        return cls(
            key=key, label=r.label, partners=r.partners, forecasts=r.forecasts,
            commit=m(r.commit_minor, currency), best_case=m(r.best_case_minor, currency),
            open_deals=r.open_deals, pipeline=m(r.pipeline_minor, currency),
            weighted_pipeline=m(r.weighted_pipeline_minor, currency),
            actual=m(r.actual_minor, currency),
        )  # fmt: skip


@strawberry.type(name="ForecastRollup", description="Vendor roles only.")
class ForecastRollupType:
    quarter: str
    currency: str
    by: RollupByEnum  # type: ignore[valid-type]
    total: ForecastRollupRowType
    rows: list[ForecastRollupRowType]

    @classmethod
    def of(cls, r: Rollup) -> ForecastRollupType:
        return cls(
            quarter=r.quarter.key,
            currency=r.currency,
            by=r.by,
            total=ForecastRollupRowType.of(r.total, r.currency, None),
            rows=[ForecastRollupRowType.of(row, r.currency, r.by) for row in r.rows],
        )


@strawberry.type(name="ConcentrationThreshold", description="Vendor roles only.")
class ConcentrationThresholdType(relay.Node):
    id: relay.NodeID[str]
    metric: ShareMetricEnum  # type: ignore[valid-type]
    top_n: int
    basis: ShareBasisEnum  # type: ignore[valid-type]
    scope: GuardrailScopeEnum  # type: ignore[valid-type]
    scope_value: str = strawberry.field(
        description="The region, or the partner group's id; empty when OVERALL."
    )
    currency: str
    max_share_bp: int = strawberry.field(description="A share above this crosses it.")
    archived_at: datetime | None
    updated_at: datetime

    resolve_nodes = visible_nodes(repository.thresholds_by_ids)

    @classmethod
    def from_model(cls, t: ConcentrationThreshold) -> ConcentrationThresholdType:
        value = t.scope_value
        if t.scope is GuardrailScope.GROUP:
            value = str(to_global_id("PartnerGroup", uuid.UUID(value)))
        return cls(
            id=str(t.id), metric=t.metric, top_n=t.top_n, basis=t.basis, scope=t.scope,
            scope_value=value, currency=t.currency, max_share_bp=t.max_share_bp,
            archived_at=t.archived_at, updated_at=t.updated_at,
        )  # fmt: skip


@strawberry.type(name="ConcentrationAlert", description="A threshold crossed in a quarter.")
class ConcentrationAlertType(relay.Node):
    id: relay.NodeID[str]
    threshold_id: relay.GlobalID
    quarter: str
    share_bp: int
    max_share_bp: int
    top_revenue: MoneyType
    total_revenue: MoneyType
    top_partner_ids: list[relay.GlobalID] = strawberry.field(
        description="The partners holding the share (those the caller may read)."
    )
    fired_at: datetime

    resolve_nodes = visible_nodes(None)

    @classmethod
    def of(cls, a: ConcentrationAlert, visible: set[uuid.UUID]) -> ConcentrationAlertType:
        return cls(
            id=str(a.id),
            threshold_id=to_global_id("ConcentrationThreshold", a.threshold_id),
            quarter=a.quarter, share_bp=a.share_bp, max_share_bp=a.max_share_bp,
            top_revenue=MoneyType.of(a.top_revenue_minor, a.currency),
            total_revenue=MoneyType.of(a.total_revenue_minor, a.currency),
            top_partner_ids=[
                to_global_id("Partner", uuid.UUID(p))
                for p in a.top_partner_ids
                if uuid.UUID(p) in visible
            ],
            fired_at=a.fired_at,
        )  # fmt: skip


@strawberry.type(
    name="PartnerScorecard",
    description="A partner's KPIs for a quarter (joint business review). Partner admins "
    "see their own; vendor-only figures are refused to partner roles.",
)
class PartnerScorecardType:
    partner_id: relay.GlobalID
    partner_name: str
    quarter: str
    currency: str
    program_tier: str
    revenue: MoneyType
    previous_quarter_revenue: MoneyType
    growth_bp: int | None = strawberry.field(
        description="Against the previous quarter. "
        "At most ±2147483647 (a 32-bit Int): a ratio past it shows the bound."
    )
    deals_registered: int
    deals_won: int
    deals_lost: int
    win_rate_bp: int | None = strawberry.field(description="Won ÷ (won + lost) in the quarter.")
    pipeline_velocity: PipelineVelocityType = strawberry.field(description="As of now.")
    forecast: PartnerForecastType | None
    forecast_accuracy: ForecastAccuracyType | None = strawberry.field(
        description="Null until the quarter has closed."
    )
    commissions: MoneyType = strawberry.field(description="Ledger entries booked in the quarter.")
    payouts_paid: MoneyType
    payouts_pending: MoneyType = strawberry.field(description="Pending, approved or held.")
    recurring_revenue: MoneyType = strawberry.field(
        description="Annual recurring revenue of the partner's live subscriptions now."
    )
    net_revenue_retention_bp: int | None = strawberry.field(
        description="Net revenue retention of its accounts over the last 12 months."
        " "
        "At most ±2147483647 (a 32-bit Int): a ratio past it shows the bound."
    )
    _contribution_margin: strawberry.Private[MoneyType | None]
    _payout_ratio_bp: strawberry.Private[int | None]
    _share_bp: strawberry.Private[int | None]

    @strawberry.field(
        description="Catalogue margin minus commissions. Vendor roles only.",
        permission_classes=[VendorStaff],
    )
    def contribution_margin(self) -> MoneyType | None:
        return self._contribution_margin

    @strawberry.field(
        description="Commissions ÷ revenue. Vendor roles only. At most ±2147483647 (a "
        "32-bit Int): a ratio past it shows the bound.",
        permission_classes=[VendorStaff],
    )
    def payout_ratio_bp(self) -> int | None:
        return self._payout_ratio_bp

    @strawberry.field(
        description="The partner's share of the vendor's revenue. Vendor roles only.",
        permission_classes=[VendorStaff],
    )
    def share_of_vendor_revenue_bp(self) -> int | None:
        return self._share_bp

    @classmethod
    def of(cls, s: Scorecard) -> PartnerScorecardType:
        c = s.currency
        m = MoneyType.of
        internal = s.internal
        return cls(
            partner_id=to_global_id("Partner", s.partner.id), partner_name=s.partner.name,
            quarter=s.quarter.key, currency=c, program_tier=s.partner.tier,
            revenue=m(s.revenue_minor, c), previous_quarter_revenue=m(s.previous_revenue_minor, c),
            growth_bp=int_output(s.growth_bp), deals_registered=s.deals_registered,
            deals_won=s.deals_won, deals_lost=s.deals_lost, win_rate_bp=s.win_rate_bp,
            pipeline_velocity=PipelineVelocityType.of(s.partner, s.velocity),
            forecast=PartnerForecastType.from_model(s.forecast) if s.forecast else None,
            forecast_accuracy=ForecastAccuracyType.of(s.accuracy) if s.accuracy else None,
            commissions=m(s.commissions_minor, c), payouts_paid=m(s.payouts_paid_minor, c),
            payouts_pending=m(s.payouts_pending_minor, c),
            recurring_revenue=m(s.recurring_revenue_minor, c),
            net_revenue_retention_bp=int_output(s.net_revenue_retention_bp),
            _contribution_margin=m(internal.contribution_margin_minor, c) if internal else None,
            _payout_ratio_bp=int_output(internal.payout_ratio_bp) if internal else None,
            _share_bp=internal.share_of_vendor_revenue_bp if internal else None,
        )  # fmt: skip
