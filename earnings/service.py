"""Earnings as partners and vendors read them: the summary for a partner or a rep over a
period (earned, pending, held, paid, tier, change, explanations)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from earnings import changes, explanations, programs, withdrawals
from earnings.claims import ClaimSignals
from earnings.coverage import Coverage, Gap
from earnings.errors import EarningsErrorCode, currency_error
from earnings.explanations import Explanation
from earnings.ledger import standing_at, window_moves_at
from earnings.models import (
    CreditedSource,
    EarningEntry,
    EntryKind,
    PayoutHold,
    PayoutStatement,
    PayoutStatus,
    Program,
    ProgramKind,
    SourceType,
)
from earnings.payouts import hold_explanation, month_start, next_month
from earnings.programs import Rules, TierStatus
from earnings.repository import Scope, readable_holds
from infra.clock import Clock
from infra.errors import DomainError
from partners.groups import groups_of
from partners.roles import Principal

MAX_PERIOD_DAYS = 400
UNCOVERED_SALES_READ = 500  # a bound on the explanation's reads; the grouped text counts them


@dataclass(frozen=True)
class HoldView:
    hold: PayoutHold
    statement: PayoutStatement
    explanation: str
    clears: str


@dataclass
class Summary:
    scope: Scope
    start: datetime
    end: datetime
    currency: str
    earned_minor: int = 0
    pending_minor: int = 0
    held_minor: int = 0
    paid_minor: int = 0
    previous_earned_minor: int = 0
    by_kind: dict[EntryKind, int] = field(default_factory=dict)
    revenue_minor: int = 0
    margin_minor: int = 0  # vendor-internal
    tier: TierStatus | None = None
    holds: list[HoldView] = field(default_factory=list)
    explanations: list[Explanation] = field(default_factory=list)

    @property
    def change_minor(self) -> int:
        return self.earned_minor - self.previous_earned_minor


def check_period(start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise DomainError(EarningsErrorCode.INVALID_PERIOD, "Give instants with a timezone.")
    if end <= start:
        raise DomainError(
            EarningsErrorCode.INVALID_PERIOD, "The period must end after it starts.", "period.end"
        )
    if (end - start).days > MAX_PERIOD_DAYS:
        raise DomainError(
            EarningsErrorCode.INVALID_PERIOD, "A period is at most 400 days.", "period.end"
        )


async def default_currency(session: AsyncSession, vendor_id: uuid.UUID) -> str:
    found = await programs.vendor_programs(session, vendor_id)
    return found[0].currency if found else "USD"


async def tier_status(
    session: AsyncSession, scope: Scope, currency: str, at: datetime, signals: ClaimSignals
) -> TierStatus | None:
    """The partner's earnings tier: its standing in the BASE program in ``currency`` that
    applied to it at ``at`` (its groups then), else the vendor's first program there (tiers
    are an organisation's, also when a rep asks)."""
    found = await programs.vendor_programs(session, scope.vendor_id, currency)
    if not found:
        return None
    found.sort(key=lambda p: (p.kind is not ProgramKind.BASE, p.created_at, p.id))
    groups = await groups_of(session, scope.vendor_id, scope.partner_id, at)
    program = next((p for p in found if programs.applies_to(p, groups)), found[0])
    version = await programs.version_at(session, program.id, at)
    if version is None:
        return None
    rules = Rules.from_json(version.rules)
    standing = await standing_at(
        session, vendor_id=scope.vendor_id, partner_id=scope.partner_id, currency=currency,
        at=at, window_days=rules.window_days, signals=signals,
    )  # fmt: skip
    return programs.status_from(program, version, rules, standing)


# The least step of an instant: what is counted up to ``t`` included changes at ``t + TICK``.
TICK = timedelta(microseconds=1)


async def tier_moves_at(
    session: AsyncSession,
    scope: Scope,
    currency: str,
    at: datetime,
    status: TierStatus,
    signals: ClaimSignals,
) -> datetime | None:
    """When time alone next changes ``status``: a sale leaving its trailing window (the
    qualified revenue and the refund rate), or, when a tier of the program has an
    approved-claims gate, a decided claim leaving it (the approved share)."""
    moves = await window_moves_at(
        session, partner_id=scope.partner_id, currency=currency, at=at,
        window_days=status.window_days,
    )  # fmt: skip
    if status.share_gated:
        window = timedelta(days=status.window_days)
        # The share counts claims made in [at - window, at) (``standing_at``): one made at
        # ``oldest`` is counted up to ``oldest + window`` included, and left out just after.
        oldest = await signals.oldest_decided_claim(
            session, scope.vendor_id, scope.partner_id, at - window, at
        )
        leaves = oldest + window + TICK if oldest is not None else None
        if leaves is not None and (moves is None or leaves < moves):
            moves = leaves
    return moves


def _booked(scope: Scope, currency: str, start: datetime, end: datetime) -> list[Any]:
    conditions: list[Any] = [
        EarningEntry.vendor_id == scope.vendor_id,
        EarningEntry.partner_id == scope.partner_id,
        EarningEntry.currency == currency,
        col(EarningEntry.booked_at) >= start,
        col(EarningEntry.booked_at) < end,
    ]
    if scope.rep_user_id is not None:
        conditions.append(EarningEntry.rep_user_id == scope.rep_user_id)
    return conditions


async def _sum(session: AsyncSession, conditions: list[Any]) -> int:
    total = await session.scalar(
        select(func.coalesce(func.sum(EarningEntry.amount_minor), 0)).where(*conditions)
    )
    return int(total or 0)


async def summary(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    scope: Scope,
    start: datetime,
    end: datetime,
    currency: str | None = None,
    signals: ClaimSignals,
) -> Summary:
    """Sums are computed in SQL. An entry is as paid as the statement of the month it was
    booked in (PENDING before there is one; APPROVED counts as pending), so earned =
    pending + held + paid by construction."""
    check_period(start, end)
    if currency and (bad_currency := currency_error(currency)):
        raise bad_currency
    currency = currency or await default_currency(session, scope.vendor_id)
    result = Summary(scope=scope, start=start, end=end, currency=currency)
    in_period = _booked(scope, currency, start, end)
    kinds = await session.exec(
        select(EarningEntry.kind, func.sum(EarningEntry.amount_minor))
        .where(*in_period)
        .group_by(col(EarningEntry.kind))
        .order_by(col(EarningEntry.kind))
    )
    result.by_kind = {EntryKind(kind): int(total or 0) for kind, total in kinds}
    result.earned_minor = sum(result.by_kind.values())
    statements = await session.exec(
        select(PayoutStatement).where(
            PayoutStatement.partner_id == scope.partner_id,
            PayoutStatement.currency == currency,
            col(PayoutStatement.period_end) > start,
            col(PayoutStatement.period_start) < end,
            col(PayoutStatement.status).in_([PayoutStatus.PAID, PayoutStatus.HELD]),
        )
    )
    for statement in list(statements):
        part = await _sum(
            session,
            _booked(
                scope, currency, max(start, statement.period_start),
                min(end, statement.period_end),
            ),
        )  # fmt: skip
        if statement.status is PayoutStatus.PAID:
            result.paid_minor += part
        else:
            result.held_minor += part
    result.pending_minor = result.earned_minor - result.paid_minor - result.held_minor
    result.previous_earned_minor = await _sum(
        session, _booked(scope, currency, start - (end - start), start)
    )
    all_clawbacks = list(
        await session.exec(
            select(
                EarningEntry.source_event_id, EarningEntry.inputs, EarningEntry.amount_minor
            ).where(*in_period, EarningEntry.kind == EntryKind.CLAWBACK)
        )
    )
    # A cancelled subscription's clawback names it; a reversed sale's does not; a withdrawn
    # overlay's is explained with the overlay reversals (earnings.withdrawals).
    all_clawbacks = [c for c in all_clawbacks if withdrawals.MARK not in c[1]]
    withdrawn = [
        (inputs, int(amount))
        for inputs, amount in await session.exec(
            select(EarningEntry.inputs, EarningEntry.amount_minor).where(
                *in_period, col(EarningEntry.line_key).like("withdrawn:%")
            )
        )
    ]
    clawbacks = [(e, inputs) for e, inputs, _ in all_clawbacks if "subscription_id" not in inputs]
    subscription_clawbacks = [
        (e, inputs, amount) for e, inputs, amount in all_clawbacks if "subscription_id" in inputs
    ]
    spiff_keys = await session.exec(
        select(EarningEntry.line_key)
        .where(*in_period, EarningEntry.kind == EntryKind.SPIFF)
        .distinct()
    )
    spiff_skus = {key.split(":")[1] for key in spiff_keys if key.count(":") >= 1}
    revenue_stmt = select(
        func.coalesce(func.sum(CreditedSource.revenue_minor), 0),
        func.coalesce(func.sum(CreditedSource.margin_minor), 0),
    ).where(
        CreditedSource.partner_id == scope.partner_id,
        CreditedSource.currency == currency,
        col(CreditedSource.credited_at) >= start,
        col(CreditedSource.credited_at) < end,
    )
    if scope.rep_user_id is not None:
        revenue_stmt = revenue_stmt.where(CreditedSource.rep_user_id == scope.rep_user_id)
    revenue, margin = (await session.exec(revenue_stmt)).one()
    result.revenue_minor = int(revenue)
    if principal.is_vendor_staff:
        result.margin_minor = int(margin)
    now = clock.now()
    at = min(end, now)
    result.tier = await tier_status(session, scope, currency, at, signals)
    before = await tier_status(session, scope, currency, start, signals)
    # Holds are organisation-level: a rep reads none (its own entries still count as held).
    mine = col(PayoutHold.id).in_(select(readable_holds(principal).subquery().c.id))
    holds = await session.exec(
        select(PayoutHold, PayoutStatement)
        .join(PayoutStatement, col(PayoutStatement.id) == col(PayoutHold.statement_id))
        .where(
            mine,
            PayoutHold.partner_id == scope.partner_id,
            PayoutStatement.currency == currency,
            col(PayoutHold.released_at).is_(None),
        )
        .order_by(col(PayoutHold.id))
    )
    for hold, statement in holds:
        why, clears = hold_explanation(hold)
        result.holds.append(HoldView(hold, statement, why, clears))
    released = await session.exec(
        select(PayoutHold, PayoutStatement)
        .join(PayoutStatement, col(PayoutStatement.id) == col(PayoutHold.statement_id))
        .where(
            mine,
            PayoutHold.partner_id == scope.partner_id,
            PayoutStatement.currency == currency,
            col(PayoutHold.released_at) >= start,
            col(PayoutHold.released_at) < end,
        )
        .order_by(col(PayoutHold.id))
    )
    uncovered = await _uncovered_sales(session, scope, start, end)
    by_program = await session.exec(
        select(Program.name, Program.kind, func.sum(EarningEntry.amount_minor))
        .join(Program, col(Program.id) == col(EarningEntry.program_id))
        .where(*in_period)
        .group_by(col(Program.id), col(Program.name), col(Program.kind))
        .order_by(col(Program.kind), col(Program.name))
    )
    result.explanations = [
        explanations.explain_total(result.earned_minor, result.previous_earned_minor, currency),
        *explanations.explain_programs(
            [(name, ProgramKind(kind), int(total or 0)) for name, kind, total in by_program],
            currency,
        ),
        *explanations.explain_rate(before, result.tier),
        *await changes.program_changes(
            session,
            vendor_id=scope.vendor_id,
            partner_id=scope.partner_id,
            currency=currency,
            start=start,
            end=end,
            now=now,
        ),
        *explanations.explain_entries(
            # (a withdrawn overlay's clawback is explained with the withdrawals)
            result.by_kind
            | {
                EntryKind.CLAWBACK: result.by_kind.get(EntryKind.CLAWBACK, 0)
                - sum(a for inputs, a in withdrawn if inputs.get("paid") and a < 0)
            },
            currency,
            clawbacks=clawbacks,
            spiff_skus=spiff_skus,
            subscription_clawbacks=subscription_clawbacks,
        ),
        *explanations.explain_withdrawn(withdrawn, currency),
        *await changes.adjustments(session, in_period, currency),
        *(explanations.explain_hold(h.hold, h.statement) for h in result.holds),
        *(explanations.explain_release(hold, statement) for hold, statement in released),
        *explanations.explain_uncovered(uncovered, currency),
        *explanations.explain_next_tier(result.tier),
    ]
    return result


async def _uncovered_sales(
    session: AsyncSession, scope: Scope, start: datetime, end: datetime
) -> list[tuple[CreditedSource, Gap]]:
    """Sales credited in the period, in any currency, that earned nothing because no
    program covers them (a sale with no entries at all), with why."""
    earned = select(EarningEntry.id).where(EarningEntry.source_id == CreditedSource.id)
    stmt = (
        select(CreditedSource)
        .where(
            CreditedSource.partner_id == scope.partner_id,
            CreditedSource.source_type == SourceType.SALE_APPROVED,
            col(CreditedSource.credited_at) >= start,
            col(CreditedSource.credited_at) < end,
            ~earned.exists(),
        )
        .order_by(col(CreditedSource.id))
        .limit(UNCOVERED_SALES_READ)
    )
    if scope.rep_user_id is not None:
        stmt = stmt.where(CreditedSource.rep_user_id == scope.rep_user_id)
    coverage = Coverage(session, scope.vendor_id)
    found = []
    for source in await session.exec(stmt):
        skus = [str(line.get("sku") or "") for line in source.lines]
        gap = await coverage.gap(source.currency, source.effective_at, skus, source.partner_id)
        # A program made later, effective back then, does not credit sales already
        # credited: the sale still earned nothing because none covered it when credited.
        found.append((source, gap or Gap(source.currency, no_program=True)))
    return found


def current_month(clock: Clock) -> tuple[datetime, datetime]:
    start = month_start(clock.now())
    return start, next_month(start)
