"""Vendor-only program metrics: contribution margin (catalogue ``margin_rate_bp``), payout
ratio, activation rate, concentration and earnings volatility, per partner and in total.
Never computed for partner roles."""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import case, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from earnings.errors import currency_error
from earnings.models import CreditedSource, EarningEntry, SourceType
from earnings.payouts import month_start, next_month, previous_month
from earnings.policy import EARNINGS, EarningsOp
from earnings.rounding import ratio_bp
from earnings.service import check_period
from partners.models import Partner, PartnerStatus
from partners.repository import readable_partners
from partners.roles import Principal

VOLATILITY_MONTHS = 6
SALE = SourceType.SALE_APPROVED


@dataclass
class Figures:
    revenue_minor: int = 0
    earnings_minor: int = 0
    margin_minor: int = 0
    sales: int = 0
    volatility_bp: int | None = None

    @property
    def contribution_margin_minor(self) -> int:
        return self.margin_minor - self.earnings_minor

    @property
    def payout_ratio_bp(self) -> int | None:
        return ratio_bp(self.earnings_minor, self.revenue_minor)


@dataclass
class PartnerFigures:
    partner: Partner
    figures: Figures


@dataclass
class VendorMetrics:
    start: datetime
    end: datetime
    currency: str
    total: Figures
    partners: list[PartnerFigures] = field(default_factory=list)
    activation_rate_bp: int | None = None
    concentration_bp: int | None = None
    top_partner: Partner | None = None


def volatility_bp(monthly: list[int]) -> int | None:
    """Coefficient of variation (population standard deviation / mean) in basis points;
    None when the mean is not positive."""
    n, total = len(monthly), sum(monthly)
    if n == 0 or total <= 0:
        return None
    spread = n * sum(x * x for x in monthly) - total * total  # n^2 * variance
    return math.isqrt(spread * 10_000 * 10_000) // total


async def vendor_metrics(
    session: AsyncSession, principal: Principal, *, start: datetime, end: datetime, currency: str
) -> VendorMetrics:
    EARNINGS.require(principal, EarningsOp.READ_METRICS)
    check_period(start, end)
    if bad_currency := currency_error(currency):
        raise bad_currency
    partners = {p.id: p for p in await session.exec(readable_partners(principal))}
    ids = list(partners)
    per: dict[uuid.UUID, Figures] = defaultdict(Figures)
    sources = await session.exec(
        select(
            CreditedSource.partner_id,
            func.sum(CreditedSource.revenue_minor),
            func.sum(CreditedSource.margin_minor),
            func.sum(case((col(CreditedSource.source_type) == SALE, 1), else_=0)),
        )
        .where(
            col(CreditedSource.partner_id).in_(ids),
            CreditedSource.currency == currency,
            col(CreditedSource.credited_at) >= start,
            col(CreditedSource.credited_at) < end,
        )
        .group_by(col(CreditedSource.partner_id))
    )
    for partner_id, revenue, margin, sales in sources:
        per[partner_id].revenue_minor = int(revenue or 0)
        per[partner_id].margin_minor = int(margin or 0)
        per[partner_id].sales = int(sales or 0)
    earnings = await session.exec(
        select(EarningEntry.partner_id, func.sum(EarningEntry.amount_minor))
        .where(
            col(EarningEntry.partner_id).in_(ids),
            EarningEntry.currency == currency,
            col(EarningEntry.booked_at) >= start,
            col(EarningEntry.booked_at) < end,
        )
        .group_by(col(EarningEntry.partner_id))
    )
    for partner_id, amount in earnings:
        per[partner_id].earnings_minor = int(amount or 0)
    # Monthly earnings over the months up to the period's end, for volatility.
    first = month_start(end)
    for _ in range(VOLATILITY_MONTHS - 1):
        first = previous_month(first)
    months = [first]
    while len(months) < VOLATILITY_MONTHS:
        months.append(next_month(months[-1]))
    monthly: dict[uuid.UUID, list[int]] = {pid: [0] * VOLATILITY_MONTHS for pid in ids}
    rows = await session.exec(
        select(EarningEntry.partner_id, EarningEntry.booked_at, EarningEntry.amount_minor).where(
            col(EarningEntry.partner_id).in_(ids),
            EarningEntry.currency == currency,
            col(EarningEntry.booked_at) >= first,
            col(EarningEntry.booked_at) < next_month(months[-1]),
        )
    )
    for partner_id, booked_at, amount in rows:
        monthly[partner_id][months.index(month_start(booked_at))] += amount
    total = Figures()
    result = VendorMetrics(start=start, end=end, currency=currency, total=total)
    for pid, partner in partners.items():
        fig = per[pid]
        fig.volatility_bp = volatility_bp(monthly[pid])
        result.partners.append(PartnerFigures(partner, fig))
        total.revenue_minor += fig.revenue_minor
        total.earnings_minor += fig.earnings_minor
        total.margin_minor += fig.margin_minor
        total.sales += fig.sales
    total.volatility_bp = volatility_bp([sum(col_) for col_ in zip(*monthly.values(), strict=True)])
    active = [p for p in partners.values() if p.status is PartnerStatus.ACTIVE]
    if active:
        selling = sum(1 for p in active if per[p.id].sales > 0)
        result.activation_rate_bp = ratio_bp(selling, len(active))
    if total.revenue_minor > 0 and result.partners:
        top = max(result.partners, key=lambda pf: pf.figures.revenue_minor)
        result.top_partner = top.partner
        result.concentration_bp = ratio_bp(top.figures.revenue_minor, total.revenue_minor)
    result.partners.sort(key=lambda pf: (-pf.figures.revenue_minor, pf.partner.name))
    return result
