"""Vendor-only program metrics: contribution margin (catalogue ``margin_rate_bp``), payout
ratio, activation rate, concentration and earnings volatility, per partner and in total,
and optionally segmented by partner region, product line (catalogue category) or partner
group. Never computed for partner roles."""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import case, func, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from catalogue.models import Product
from catalogue.product_lines import OTHER, line_of
from earnings.errors import currency_error
from earnings.models import CreditedSource, EarningEntry, SourceType
from earnings.payouts import month_start, next_month, previous_month
from earnings.policy import EARNINGS, EarningsOp
from earnings.rounding import divide_rounded, ratio_bp
from earnings.service import check_period
from partners.group_models import PartnerGroupMembership
from partners.groups import readable_groups
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


class Segmentation(StrEnum):
    REGION = "REGION"  # the partner's region
    PRODUCT_LINE = "PRODUCT_LINE"  # the catalogue category of each sold line
    GROUP = "GROUP"  # the partner groups the partner was in at the period's end


@dataclass
class Segment:
    """One segment's revenue (qualified, as ``Figures.revenue_minor``), its share of the
    total, and its concentration (its top partner's share of the segment's revenue).
    Earnings and sales are the segment's partners' (none for product lines: a ledger entry
    is the partner's, not a line's). A partner in several groups counts in each."""

    key: str
    label: str
    revenue_minor: int = 0
    earnings_minor: int | None = None
    sales: int | None = None
    partners: int = 0
    share_bp: int | None = None
    concentration_bp: int | None = None
    by_partner: dict[uuid.UUID, int] = field(default_factory=dict, repr=False)


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
    segmented_by: Segmentation | None = None
    segments: list[Segment] = field(default_factory=list)


def volatility_bp(monthly: list[int]) -> int | None:
    """Coefficient of variation (population standard deviation / mean) in basis points;
    None when the mean is not positive."""
    n, total = len(monthly), sum(monthly)
    if n == 0 or total <= 0:
        return None
    spread = n * sum(x * x for x in monthly) - total * total  # n^2 * variance
    return math.isqrt(spread * 10_000 * 10_000) // total


async def vendor_metrics(
    session: AsyncSession,
    principal: Principal,
    *,
    start: datetime,
    end: datetime,
    currency: str,
    segment_by: Segmentation | None = None,
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
    if segment_by is not None:
        result.segmented_by = segment_by
        result.segments = await _segments(session, principal, result, segment_by)
    return result


async def _segments(
    session: AsyncSession, principal: Principal, m: VendorMetrics, by: Segmentation
) -> list[Segment]:
    buckets: dict[str, Segment] = {}
    if by is Segmentation.PRODUCT_LINE:
        await _product_lines(session, principal, m, buckets)
    else:
        keys: dict[uuid.UUID, list[tuple[str, str]]] = {}
        if by is Segmentation.REGION:
            keys = {pf.partner.id: [(pf.partner.region, pf.partner.region)] for pf in m.partners}
        else:
            keys = await _groups_at(session, principal, m.end - timedelta(microseconds=1))
        for pf in m.partners:
            for key, label in keys.get(pf.partner.id, []):
                seg = buckets.setdefault(key, Segment(key, label, earnings_minor=0, sales=0))
                seg.revenue_minor += pf.figures.revenue_minor
                seg.earnings_minor = (seg.earnings_minor or 0) + pf.figures.earnings_minor
                seg.sales = (seg.sales or 0) + pf.figures.sales
                seg.by_partner[pf.partner.id] = pf.figures.revenue_minor
    for seg in buckets.values():
        seg.partners = len(seg.by_partner)
        seg.share_bp = ratio_bp(seg.revenue_minor, m.total.revenue_minor)
        if seg.revenue_minor > 0 and seg.by_partner:
            seg.concentration_bp = ratio_bp(max(seg.by_partner.values()), seg.revenue_minor)
    return sorted(buckets.values(), key=lambda s: (-s.revenue_minor, s.label))


async def _groups_at(
    session: AsyncSession, principal: Principal, at: datetime
) -> dict[uuid.UUID, list[tuple[str, str]]]:
    # The groups the caller may read (a pilot's treatment arm only for the roles that read
    # pilots): a segment of one it may not read would tell who is in the arm.
    readable = readable_groups(principal).subquery()
    rows = await session.exec(
        select(PartnerGroupMembership.partner_id, readable.c.id, readable.c.name)
        .join(readable, readable.c.id == col(PartnerGroupMembership.group_id))
        .where(
            PartnerGroupMembership.vendor_id == principal.vendor_id,
            col(PartnerGroupMembership.joined_at) <= at,
            or_(
                col(PartnerGroupMembership.left_at).is_(None),
                col(PartnerGroupMembership.left_at) > at,
            ),
        )
    )
    out: dict[uuid.UUID, list[tuple[str, str]]] = defaultdict(list)
    for partner_id, group_id, name in rows:
        out[partner_id].append((str(group_id), name))
    return out


async def _product_lines(
    session: AsyncSession, principal: Principal, m: VendorMetrics, buckets: dict[str, Segment]
) -> None:
    """Each credited source's revenue split across its lines' product lines in proportion
    to the lines' amounts (a partial reversal names the sale's lines), the rounding
    difference to the largest line; a source without lines is ``OTHER``."""
    categories = dict(
        (
            await session.exec(
                select(Product.sku, Product.category).where(
                    Product.vendor_id == principal.vendor_id
                )
            )
        ).all()
    )
    ids = [pf.partner.id for pf in m.partners]
    sources = await session.exec(
        select(CreditedSource.partner_id, CreditedSource.revenue_minor, CreditedSource.lines)
        .where(
            col(CreditedSource.partner_id).in_(ids),
            CreditedSource.currency == m.currency,
            col(CreditedSource.credited_at) >= m.start,
            col(CreditedSource.credited_at) < m.end,
            CreditedSource.revenue_minor != 0,
        )
    )  # fmt: skip
    for partner_id, revenue, lines in sources:
        for line, amount in _split(revenue, lines, categories).items():
            seg = buckets.setdefault(line, Segment(line, line))
            seg.revenue_minor += amount
            seg.by_partner[partner_id] = seg.by_partner.get(partner_id, 0) + amount


def _split(revenue: int, lines: Sequence[Any], categories: dict[str, str]) -> dict[str, int]:
    weights: dict[str, int] = defaultdict(int)
    for ln in lines:
        weights[line_of(categories.get(str(ln.get("sku") or ""), ""))] += abs(
            int(ln.get("amount_minor") or 0)
        )
    total = sum(weights.values())
    if total <= 0:
        return {OTHER: revenue}
    shares = {name: divide_rounded(revenue * w, total) for name, w in weights.items()}
    largest = max(sorted(weights), key=lambda name: weights[name])
    shares[largest] += revenue - sum(shares.values())
    return shares
