"""``pilotReport``: treatment against control over the pilot's window, from the source
tables (credited sales for revenue, margin and activation; the ledger for payout cost),
never from derived figures. The window is ``[started_at, min(ended_at or ends_at, now))``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from earnings.errors import currency_error
from earnings.models import CreditedSource, EarningEntry, SourceType
from earnings.service import default_currency
from infra.clock import Clock
from infra.errors import DomainError
from partners.roles import Principal
from pilots.errors import PilotErrorCode
from pilots.models import Arm, Pilot, PilotAssignment
from pilots.policy import PILOTS, PilotOp
from pilots.repository import get_readable_pilot
from pilots.statistics import (
    LEVEL,
    MeanComparison,
    ProportionComparison,
    compare_means,
    compare_proportions,
)

SALES = (SourceType.SALE_APPROVED, SourceType.SALE_REVERSED)


@dataclass(frozen=True)
class PilotReport:
    pilot: Pilot
    start: datetime
    end: datetime
    currency: str
    level: float
    revenue: MeanComparison
    margin: MeanComparison
    payout_cost: MeanComparison
    activation: ProportionComparison


async def _sums(
    session: AsyncSession, column: object, stmt_where: list[object], partner_column: object
) -> dict[uuid.UUID, int]:
    rows = await session.exec(
        select(partner_column, func.coalesce(func.sum(column), 0))  # type: ignore[call-overload]
        .where(*stmt_where)
        .group_by(partner_column)
    )
    return {partner_id: int(total) for partner_id, total in rows}


async def pilot_report(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    pilot_id: uuid.UUID,
    currency: str | None = None,
) -> PilotReport | None:
    """None when the caller may not see the pilot (as for a missing one)."""
    PILOTS.require(principal, PilotOp.REPORT)
    pilot = await get_readable_pilot(session, principal, pilot_id)
    if pilot is None:
        return None
    if pilot.started_at is None:
        raise DomainError(PilotErrorCode.NOT_STARTED, "The pilot has not started.", "pilot_id")
    if currency is not None and (bad := currency_error(currency.strip().upper(), "currency")):
        raise DomainError(PilotErrorCode.INVALID_CURRENCY, bad.message, "currency")
    currency = currency.strip().upper() if currency else await default_currency(
        session, pilot.vendor_id
    )  # fmt: skip
    start = pilot.started_at
    end = max(start, min(pilot.ended_at or pilot.ends_at, pilot.ends_at, clock.now()))
    arms = {
        partner_id: arm
        for partner_id, arm in await session.exec(
            select(PilotAssignment.partner_id, PilotAssignment.arm).where(
                PilotAssignment.pilot_id == pilot.id
            )
        )
    }
    ids = list(arms)
    sales_where: list[object] = [
        CreditedSource.vendor_id == pilot.vendor_id,
        col(CreditedSource.partner_id).in_(ids),
        CreditedSource.currency == currency,
        col(CreditedSource.source_type).in_(SALES),
        col(CreditedSource.effective_at) >= start,
        col(CreditedSource.effective_at) < end,
    ]
    revenue = await _sums(session, CreditedSource.revenue_minor, sales_where,
                          CreditedSource.partner_id)  # fmt: skip
    margin = await _sums(session, CreditedSource.margin_minor, sales_where,
                         CreditedSource.partner_id)  # fmt: skip
    cost = await _sums(session, EarningEntry.amount_minor, [
        EarningEntry.vendor_id == pilot.vendor_id,
        col(EarningEntry.partner_id).in_(ids),
        EarningEntry.currency == currency,
        col(EarningEntry.effective_at) >= start,
        col(EarningEntry.effective_at) < end,
    ], EarningEntry.partner_id)  # fmt: skip
    # Contribution margin: what the catalogue margin leaves after what the partner earned
    # (a treatment that pays more must show it here, not only in the payout cost).
    contribution = {p: margin.get(p, 0) - cost.get(p, 0) for p in ids}
    # Activation: the first approved sale ever (any currency) falls in the window, among
    # the partners that had not sold before it started.
    firsts = {
        partner_id: first
        for partner_id, first in await session.exec(
            select(CreditedSource.partner_id, func.min(CreditedSource.effective_at))
            .where(
                col(CreditedSource.partner_id).in_(ids),
                CreditedSource.source_type == SourceType.SALE_APPROVED,
            )
            .group_by(col(CreditedSource.partner_id))
        )
    }

    def values(table: dict[uuid.UUID, int], arm: Arm) -> list[float]:
        return [float(table.get(p, 0)) for p, a in sorted(arms.items()) if a is arm]

    def activation(arm: Arm) -> tuple[int, int]:
        eligible = [
            p for p, a in arms.items() if a is arm and not _sold_before(firsts.get(p), start)
        ]
        activated = [p for p in eligible if _in(firsts.get(p), start, end)]
        return len(activated), len(eligible)

    t_k, t_n = activation(Arm.TREATMENT)
    c_k, c_n = activation(Arm.CONTROL)
    return PilotReport(
        pilot=pilot, start=start, end=end, currency=currency, level=LEVEL,
        revenue=compare_means(values(revenue, Arm.TREATMENT), values(revenue, Arm.CONTROL)),
        margin=compare_means(
            values(contribution, Arm.TREATMENT), values(contribution, Arm.CONTROL)
        ),
        payout_cost=compare_means(values(cost, Arm.TREATMENT), values(cost, Arm.CONTROL)),
        activation=compare_proportions(t_k, t_n, c_k, c_n),
    )  # fmt: skip


def _as_utc(at: datetime | None) -> datetime | None:
    # SQLite's MIN() over a UTCDateTime column comes back as text on some drivers.
    if at is None or isinstance(at, datetime):
        return at
    return datetime.fromisoformat(str(at))


def _sold_before(first: datetime | None, start: datetime) -> bool:
    first = _as_utc(first)
    return first is not None and first < start


def _in(first: datetime | None, start: datetime, end: datetime) -> bool:
    first = _as_utc(first)
    return first is not None and start <= first < end
