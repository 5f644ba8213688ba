"""GraphQL types for earnings. Vendor-internal values (margins, hold reasons, risk flags,
internal notes, decision records, metrics) sit behind field permissions *and* are left out
of the objects built for partner roles, so no path (query, node, subscription) carries
them to a partner."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import cast

import strawberry
from strawberry import Info, relay
from strawberry.scalars import JSON

from earnings import programs, repository
from earnings.explanations import Explanation, ExplanationKind
from earnings.forecast import Forecast
from earnings.metrics import Figures, Segment, Segmentation, VendorMetrics
from earnings.models import (
    DecisionAction,
    EarningEntry,
    EntryKind,
    HoldReason,
    PayoutDecision,
    PayoutHold,
    PayoutStatement,
    PayoutStatus,
    Program,
    ProgramKind,
    ProgramVersion,
)
from earnings.payouts import hold_explanation
from earnings.programs import Recurring, Rules, TierStatus
from earnings.rounding import format_bp
from earnings.service import Summary
from infra.limits import int_output
from partners.groups import groups_by_ids
from partners.roles import Principal
from schema.context import Context
from schema.money import MoneyType
from schema.partners.types import PartnerGroupType
from schema.permissions import FinanceOrAdmin, VendorStaff
from schema.relay import to_global_id, visible_nodes

EntryKindEnum = strawberry.enum(EntryKind, description="What produced a ledger entry.")
PayoutStatusEnum = strawberry.enum(PayoutStatus)
HoldReasonEnum = strawberry.enum(HoldReason, description="Why a payout is held (vendor roles).")
DecisionActionEnum = strawberry.enum(DecisionAction, name="PayoutDecisionAction")
ExplanationKindEnum = strawberry.enum(ExplanationKind)
ProgramKindEnum = strawberry.enum(
    ProgramKind, description="BASE: one per partner; BONUS: paid on top of the base program."
)


def _money(amount: int | None, currency: str) -> MoneyType | None:
    return None if amount is None else MoneyType.of(amount, currency)


@strawberry.type(name="EarningEntry", description="One line of the append-only ledger.")
class EarningEntryType(relay.Node):
    id: relay.NodeID[str]
    kind: EntryKind
    amount: MoneyType
    rule: str = strawberry.field(description="The rule that produced the amount, in words.")
    inputs: JSON = strawberry.field(description="The figures the rule was applied to.")
    effective_at: datetime = strawberry.field(
        description="When the source happened (chose the program version)."
    )
    booked_at: datetime = strawberry.field(description="When it was credited (its statement).")
    source_event_id: strawberry.ID
    program_version_id: relay.GlobalID | None
    partner_id: relay.GlobalID
    rep_id: relay.GlobalID | None

    @classmethod
    def from_model(cls, entry: EarningEntry) -> EarningEntryType:
        return cls(
            id=str(entry.id),
            kind=entry.kind,
            amount=MoneyType.of(entry.amount_minor, entry.currency),
            rule=entry.rule,
            inputs=cast(JSON, entry.inputs),
            effective_at=entry.effective_at,
            booked_at=entry.booked_at,
            source_event_id=strawberry.ID(str(entry.source_event_id)),
            program_version_id=to_global_id("EarningProgramVersion", entry.program_version_id)
            if entry.program_version_id
            else None,
            partner_id=to_global_id("Partner", entry.partner_id),
            rep_id=to_global_id("User", entry.rep_user_id) if entry.rep_user_id else None,
        )

    resolve_nodes = visible_nodes(repository.entries_by_ids)


@strawberry.type(name="PayoutHold", description="Why a payout waits, and what clears it.")
class PayoutHoldType:
    id: relay.GlobalID
    explanation: str = strawberry.field(description="Why, in plain words.")
    clears: str = strawberry.field(
        description="What releases it; once released, when and why it was released."
    )
    expected_release_at: datetime | None
    created_at: datetime
    released_at: datetime | None
    _reason: strawberry.Private[HoldReason | None]
    _internal_note: strawberry.Private[str | None]
    _risk_flags: strawberry.Private[list[str] | None]

    @strawberry.field(
        description="The typed reason. Vendor roles only.", permission_classes=[VendorStaff]
    )
    def reason(self) -> HoldReason | None:
        return self._reason

    @strawberry.field(
        description="Finance's note. Vendor roles only.", permission_classes=[VendorStaff]
    )
    def internal_note(self) -> str | None:
        return self._internal_note

    @strawberry.field(
        description="Risk flags on the underlying claims. Vendor roles only.",
        permission_classes=[VendorStaff],
    )
    def risk_flags(self) -> list[str] | None:
        return self._risk_flags

    @classmethod
    def from_model(cls, hold: PayoutHold, principal: Principal) -> PayoutHoldType:
        why, clears = hold_explanation(hold)
        internal = principal.is_vendor_staff
        return cls(
            id=to_global_id("PayoutHold", hold.id),
            explanation=why,
            clears=clears,
            expected_release_at=hold.expected_release_at,
            created_at=hold.created_at,
            released_at=hold.released_at,
            _reason=hold.reason if internal else None,
            _internal_note=hold.internal_note if internal else None,
            _risk_flags=list(hold.risk_flags) if internal else None,
        )


@strawberry.type(name="PayoutDecision", description="An immutable record of a payout decision.")
class PayoutDecisionType:
    id: relay.GlobalID
    action: DecisionAction
    reason: HoldReason | None
    amount: MoneyType
    data_version: str = strawberry.field(
        description="The statement's data: number of entries and the last entry's id."
    )
    program_version_ids: list[relay.GlobalID]
    actor_id: relay.GlobalID | None = strawberry.field(description="Null for the system.")
    note: str
    decided_at: datetime

    @classmethod
    def from_model(cls, d: PayoutDecision) -> PayoutDecisionType:
        return cls(
            id=to_global_id("PayoutDecision", d.id),
            action=d.action,
            reason=d.reason,
            amount=MoneyType.of(d.amount_minor, d.currency),
            data_version=d.data_version,
            program_version_ids=[
                to_global_id("EarningProgramVersion", uuid.UUID(v)) for v in d.program_version_ids
            ],
            actor_id=to_global_id("User", d.actor_user_id) if d.actor_user_id else None,
            note=d.note,
            decided_at=d.decided_at,
        )


@strawberry.type(name="PayoutStatement", description="A partner's monthly payout statement.")
class PayoutStatementType(relay.Node):
    id: relay.NodeID[str]
    partner_id: relay.GlobalID
    currency: str
    period_start: datetime
    period_end: datetime
    total: MoneyType = strawberry.field(description="The sum of the month's ledger entries.")
    entry_count: int
    status: PayoutStatus
    paid_reference: str

    @strawberry.field(description="Holds on this statement, released ones included.")
    async def holds(self, info: Info[Context, None]) -> list[PayoutHoldType]:
        principal = info.context.caller
        rows = await repository.holds_of_statement(
            info.context.session, principal, uuid.UUID(self.id)
        )
        return [PayoutHoldType.from_model(h, principal) for h in rows]

    @strawberry.field(
        description="Every decision on this statement. Finance and vendor admins only.",
        permission_classes=[FinanceOrAdmin],
    )
    async def decisions(self, info: Info[Context, None]) -> list[PayoutDecisionType] | None:
        principal = info.context.caller
        rows = await repository.decisions_of_statement(
            info.context.session, principal, uuid.UUID(self.id)
        )
        return [PayoutDecisionType.from_model(d) for d in rows]

    @classmethod
    def from_model(cls, s: PayoutStatement) -> PayoutStatementType:
        return cls(
            id=str(s.id),
            partner_id=to_global_id("Partner", s.partner_id),
            currency=s.currency,
            period_start=s.period_start,
            period_end=s.period_end,
            total=MoneyType.of(s.total_minor, s.currency),
            entry_count=s.entry_count,
            status=s.status,
            paid_reference=s.paid_reference,
        )

    resolve_nodes = visible_nodes(repository.statements_by_ids)


@strawberry.type(name="TierStatus", description="Where a partner stands in a program.")
class TierStatusType:
    program: str
    version: int
    window_days: int
    qualified_revenue: MoneyType = strawberry.field(
        description="Approved sales minus reversals over the trailing window."
    )
    current_tier: str | None
    rate: str | None = strawberry.field(description="Base rate plus tier uplift, e.g. '10%'.")
    rate_bp: int | None
    next_tier: str | None
    next_tier_threshold: MoneyType | None
    amount_to_next_tier: MoneyType | None
    gate_failures: list[str] = strawberry.field(
        description="Quality gates that keep a reached tier from applying, in plain words."
    )

    @classmethod
    def of(cls, t: TierStatus | None) -> TierStatusType | None:
        if t is None:
            return None
        return cls(
            program=t.program_name,
            version=t.version_number,
            window_days=t.window_days,
            qualified_revenue=MoneyType.of(t.qualified_revenue_minor, t.currency),
            current_tier=t.tier.name if t.tier else None,
            rate=format_bp(t.rate_bp) if t.rate_bp is not None else None,
            rate_bp=t.rate_bp,
            next_tier=t.next_tier.name if t.next_tier else None,
            next_tier_threshold=_money(
                t.next_tier.threshold_minor if t.next_tier else None, t.currency
            ),
            amount_to_next_tier=_money(t.amount_to_next_minor, t.currency),
            gate_failures=list(t.gate_failures),
        )


@strawberry.type(name="EarningsExplanation")
class ExplanationType:
    kind: ExplanationKind
    text: str
    amount: MoneyType | None

    @classmethod
    def of(cls, e: Explanation, currency: str) -> ExplanationType:
        return cls(kind=e.kind, text=e.text, amount=_money(e.amount_minor, currency))


@strawberry.type
class KindAmount:
    kind: EntryKind
    amount: MoneyType


@strawberry.type(
    name="EarningsSummary",
    description="What a partner (or one rep) earned over a period, where it stands, and why.",
)
class EarningsSummaryType:
    partner_id: relay.GlobalID
    rep_id: relay.GlobalID | None
    period_start: datetime
    period_end: datetime
    currency: str
    earned: MoneyType = strawberry.field(description="Entries booked in the period.")
    pending: MoneyType = strawberry.field(description="Not yet paid (incl. approved).")
    held: MoneyType
    paid: MoneyType
    previous_earned: MoneyType = strawberry.field(description="The previous period, same length.")
    change: MoneyType
    by_kind: list[KindAmount]
    revenue: MoneyType = strawberry.field(description="Qualified revenue credited in the period.")
    tier: TierStatusType | None
    holds: list[PayoutHoldType] = strawberry.field(
        description="Holds not yet released (none to a partner rep: they are the partner's)."
    )
    explanations: list[ExplanationType]
    _margin: strawberry.Private[int | None]

    @strawberry.field(
        description="Catalogue contribution margin of the period's revenue. Vendor roles only.",
        permission_classes=[VendorStaff],
    )
    def margin(self) -> MoneyType | None:
        return _money(self._margin, self.currency)

    @classmethod
    def of(cls, s: Summary, principal: Principal) -> EarningsSummaryType:
        c = s.currency
        return cls(
            partner_id=to_global_id("Partner", s.scope.partner_id),
            rep_id=to_global_id("User", s.scope.rep_user_id) if s.scope.rep_user_id else None,
            period_start=s.start,
            period_end=s.end,
            currency=c,
            earned=MoneyType.of(s.earned_minor, c),
            pending=MoneyType.of(s.pending_minor, c),
            held=MoneyType.of(s.held_minor, c),
            paid=MoneyType.of(s.paid_minor, c),
            previous_earned=MoneyType.of(s.previous_earned_minor, c),
            change=MoneyType.of(s.change_minor, c),
            by_kind=[KindAmount(kind=k, amount=MoneyType.of(v, c)) for k, v in s.by_kind.items()],
            revenue=MoneyType.of(s.revenue_minor, c),
            tier=TierStatusType.of(s.tier),
            holds=[PayoutHoldType.from_model(h.hold, principal) for h in s.holds],
            explanations=[ExplanationType.of(e, c) for e in s.explanations],
            _margin=s.margin_minor if principal.is_vendor_staff else None,
        )


@strawberry.type(name="EarningsForecast", description="What one more sale would do.")
class ForecastType:
    additional_revenue: MoneyType
    sku: str | None
    units: int
    current: TierStatusType
    projected: TierStatusType
    projected_earning: MoneyType = strawberry.field(description="Base + tier uplift + spiffs.")
    base: MoneyType
    uplift: MoneyType
    spiff: MoneyType
    explanation: str

    @classmethod
    def of(cls, f: Forecast) -> ForecastType:
        c = f.currency
        current, projected = TierStatusType.of(f.current), TierStatusType.of(f.projected)
        assert current is not None
        assert projected is not None
        return cls(
            additional_revenue=MoneyType.of(f.additional_revenue_minor, c),
            sku=f.sku,
            units=f.units,
            current=current,
            projected=projected,
            projected_earning=MoneyType.of(f.projected_earning_minor, c),
            base=MoneyType.of(f.base_minor, c),
            uplift=MoneyType.of(f.uplift_minor, c),
            spiff=MoneyType.of(f.spiff_minor, c),
            explanation=f.explanation,
        )


@strawberry.type(name="EarningsFigures", description="Vendor-internal program figures.")
class FiguresType:
    revenue: MoneyType
    earnings: MoneyType
    margin: MoneyType = strawberry.field(description="Catalogue margin of the revenue.")
    contribution_margin: MoneyType = strawberry.field(description="Margin minus earnings.")
    payout_ratio_bp: int | None = strawberry.field(
        description="Earnings / revenue. "
        "At most ±2147483647 (a 32-bit Int): a ratio past it shows the bound."
    )
    volatility_bp: int | None = strawberry.field(
        description="Coefficient of variation of monthly earnings over the last 6 months."
        " "
        "At most ±2147483647 (a 32-bit Int): a ratio past it shows the bound."
    )
    sales: int

    @classmethod
    def of(cls, f: Figures, currency: str) -> FiguresType:
        return cls(
            revenue=MoneyType.of(f.revenue_minor, currency),
            earnings=MoneyType.of(f.earnings_minor, currency),
            margin=MoneyType.of(f.margin_minor, currency),
            contribution_margin=MoneyType.of(f.contribution_margin_minor, currency),
            payout_ratio_bp=int_output(f.payout_ratio_bp),
            volatility_bp=int_output(f.volatility_bp),
            sales=f.sales,
        )


@strawberry.type(name="PartnerEarningsFigures")
class PartnerFiguresType:
    partner_id: relay.GlobalID
    partner_name: str
    figures: FiguresType


MetricsSegmentationEnum = strawberry.enum(
    Segmentation,
    name="EarningsSegmentation",
    description="REGION: the partner's region; PRODUCT_LINE: the catalogue category of each "
    "sold line; GROUP: the partner groups the partner was in at the period's end.",
)


@strawberry.type(name="EarningsSegment", description="Vendor-internal segment figures.")
class SegmentType:
    key: str = strawberry.field(
        description="The region, the product line, or the partner group's id."
    )
    label: str
    revenue: MoneyType
    earnings: MoneyType | None = strawberry.field(
        description="The segment's partners' earnings; null for product lines."
    )
    sales: int | None
    partners: int = strawberry.field(description="Partners with revenue or in the segment.")
    share_bp: int | None = strawberry.field(description="The segment's share of all revenue.")
    concentration_bp: int | None = strawberry.field(
        description="The segment's top partner's share of the segment's revenue."
    )

    @classmethod
    def of(cls, s: Segment, currency: str, by: Segmentation) -> SegmentType:
        key = s.key
        if by is Segmentation.GROUP:
            key = str(to_global_id("PartnerGroup", uuid.UUID(s.key)))
        return cls(
            key=key, label=s.label, revenue=MoneyType.of(s.revenue_minor, currency),
            earnings=None if s.earnings_minor is None else MoneyType.of(s.earnings_minor, currency),
            sales=s.sales, partners=s.partners, share_bp=s.share_bp,
            concentration_bp=s.concentration_bp,
        )  # fmt: skip


@strawberry.type(name="VendorEarningsMetrics", description="Vendor roles only.")
class VendorMetricsType:
    period_start: datetime
    period_end: datetime
    currency: str
    total: FiguresType
    partners: list[PartnerFiguresType]
    activation_rate_bp: int | None = strawberry.field(
        description="Active partners with a sale in the period / active partners."
    )
    concentration_bp: int | None = strawberry.field(
        description="The top partner's share of revenue."
    )
    top_partner_id: relay.GlobalID | None
    segmented_by: MetricsSegmentationEnum | None  # type: ignore[valid-type]
    segments: list[SegmentType] = strawberry.field(
        description="Revenue by the segmentation asked for (segmentBy); empty without one."
    )

    @classmethod
    def of(cls, m: VendorMetrics) -> VendorMetricsType:
        return cls(
            period_start=m.start,
            period_end=m.end,
            currency=m.currency,
            total=FiguresType.of(m.total, m.currency),
            partners=[
                PartnerFiguresType(
                    partner_id=to_global_id("Partner", pf.partner.id),
                    partner_name=pf.partner.name,
                    figures=FiguresType.of(pf.figures, m.currency),
                )
                for pf in m.partners
            ],
            activation_rate_bp=m.activation_rate_bp,
            concentration_bp=m.concentration_bp,
            top_partner_id=to_global_id("Partner", m.top_partner.id) if m.top_partner else None,
            segmented_by=m.segmented_by,
            segments=[
                SegmentType.of(seg, m.currency, m.segmented_by)
                for seg in m.segments
                if m.segmented_by is not None
            ],
        )


# ---------------------------------------------------------------------------- programs


@strawberry.type(name="EarningBaseRate")
class BaseRateType:
    sku: str | None
    category: str | None
    rate_bp: int | None
    per_unit: MoneyType | None


@strawberry.type(name="EarningTier")
class TierType:
    name: str
    threshold: MoneyType
    uplift_bp: int
    min_approved_share_bp: int | None
    max_refund_rate_bp: int | None


@strawberry.type(name="EarningSpiff")
class SpiffType:
    sku: str
    region: str
    per_unit: MoneyType
    starts_at: datetime
    ends_at: datetime


@strawberry.type(name="EarningProgramRecurring")
class RecurringType:
    renewal_rate_bp: int
    renewal_schedule_bp: list[int]
    max_renewals: int | None
    max_months: int | None
    multi_year_escalator_bp: int
    expansion_bonus_bp: int
    retention_months: int | None
    retention_bonus: MoneyType
    clawback_days: int

    @classmethod
    def of(cls, r: Recurring, c: str) -> RecurringType:
        return cls(
            renewal_rate_bp=r.renewal_rate_bp, renewal_schedule_bp=list(r.renewal_schedule_bp),
            max_renewals=r.max_renewals, max_months=r.max_months,
            multi_year_escalator_bp=r.multi_year_escalator_bp,
            expansion_bonus_bp=r.expansion_bonus_bp, retention_months=r.retention_months,
            retention_bonus=MoneyType.of(r.retention_bonus_minor, c),
            clawback_days=r.clawback_days,
        )  # fmt: skip


@strawberry.type(name="EarningProgramRules")
class RulesType:
    base_rates: list[BaseRateType]
    window_days: int
    tiers: list[TierType]
    spiffs: list[SpiffType]
    deal_bonus_bp: int
    deal_bonus: MoneyType
    clawback: bool
    recurring: RecurringType | None

    @classmethod
    def of(cls, rules: Rules, c: str) -> RulesType:
        return cls(
            base_rates=[
                BaseRateType(
                    sku=r.sku, category=r.category, rate_bp=r.rate_bp,
                    per_unit=_money(r.per_unit_minor, c),
                )
                for r in rules.base_rates
            ],
            window_days=rules.window_days,
            tiers=[
                TierType(
                    name=t.name, threshold=MoneyType.of(t.threshold_minor, c),
                    uplift_bp=t.uplift_bp, min_approved_share_bp=t.min_approved_share_bp,
                    max_refund_rate_bp=t.max_refund_rate_bp,
                )
                for t in rules.tiers_ascending()
            ],
            spiffs=[
                SpiffType(
                    sku=s.sku, region=s.region, per_unit=MoneyType.of(s.per_unit_minor, c),
                    starts_at=s.starts_at, ends_at=s.ends_at,
                )
                for s in rules.spiffs
            ],
            deal_bonus_bp=rules.deal_bonus_bp,
            deal_bonus=MoneyType.of(rules.deal_bonus_minor, c),
            clawback=rules.clawback,
            recurring=RecurringType.of(rules.recurring, c) if rules.recurring else None,
        )  # fmt: skip


@strawberry.type(name="EarningProgramVersion")
class ProgramVersionType:
    id: relay.GlobalID
    number: int
    effective_from: datetime
    rules: RulesType

    @classmethod
    def of(cls, v: ProgramVersion, currency: str) -> ProgramVersionType:
        return cls(
            id=to_global_id("EarningProgramVersion", v.id),
            number=v.number,
            effective_from=v.effective_from,
            rules=RulesType.of(Rules.from_json(v.rules), currency),
        )


@strawberry.type(name="EarningProgram", description="A rev-share program and its versions.")
class ProgramType(relay.Node):
    id: relay.NodeID[str]
    name: str
    currency: str
    kind: ProgramKind = strawberry.field(
        description="BASE (one per partner) or BONUS (paid on top of the base program)."
    )
    _target_group_ids: strawberry.Private[list[str]]

    @strawberry.field(
        description=(
            "The partner groups it applies to (empty: every partner). Vendor roles only; null"
            " when it applies to a group you may not read (a pilot's treatment arm)."
        ),
        permission_classes=[VendorStaff],
    )
    async def target_groups(self, info: Info[Context, None]) -> list[PartnerGroupType] | None:
        ids = [uuid.UUID(g) for g in self._target_group_ids]
        found = await groups_by_ids(info.context.session, info.context.caller, ids)
        if len(found) < len(set(ids)):
            # Leaving the arm out would read as "every partner" (an empty list), or as
            # fewer groups than it has: not knowing is the honest answer.
            return None
        return [PartnerGroupType.from_model(found[i]) for i in ids]

    @strawberry.field(description="Every version, oldest first; the last one is in force.")
    async def versions(self, info: Info[Context, None]) -> list[ProgramVersionType]:
        rows = await programs.versions_of(info.context.session, uuid.UUID(self.id))
        return [ProgramVersionType.of(v, self.currency) for v in rows]

    @classmethod
    def of(cls, p: Program) -> ProgramType:
        return cls(
            id=str(p.id), name=p.name, currency=p.currency, kind=p.kind,
            _target_group_ids=list(p.target_group_ids),
        )  # fmt: skip

    resolve_nodes = visible_nodes(repository.programs_by_ids, lambda cls, row, _ctx: cls.of(row))
