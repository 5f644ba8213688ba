"""The partner scorecard for a joint business review: one partner's KPIs for a quarter.

Partner-visible: revenue (and the previous quarter's, growth), deals registered, won and
lost in the quarter and the win rate, open pipeline and pipeline velocity (now), the
forecast and its accuracy (once the quarter closed), commissions booked, payouts paid and
pending, annual recurring revenue now and net revenue retention over the last 12 months
(the subscriptions domain's figures), and the program tier. Vendor-only (None for partner
roles, refused by the schema): contribution margin, payout ratio and the partner's share of
the vendor's revenue."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import ColumnElement, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from deal_registration.registrations.models import DealRegistration, DealStatus
from earnings.models import CreditedSource, EarningEntry, PayoutStatement, PayoutStatus
from earnings.rounding import ratio_bp
from forecasts.accuracy import accuracy_of
from forecasts.actuals import revenue_by_partner
from forecasts.models import ForecastAccuracy, PartnerForecast
from forecasts.policy import FORECASTS, ForecastOp
from forecasts.quarters import Quarter
from forecasts.rollup import parse_currency, parse_quarter
from forecasts.velocity import Velocity, velocities
from infra.clock import Clock
from partners.models import Partner
from partners.repository import get_readable_partner
from partners.roles import Principal
from subscriptions.events import arr_of
from subscriptions.models import Subscription, SubscriptionStatus
from subscriptions.retention import net_revenue_retention


@dataclass(frozen=True)
class Internal:
    """Vendor-only figures."""

    contribution_margin_minor: int
    payout_ratio_bp: int | None
    share_of_vendor_revenue_bp: int | None


@dataclass(frozen=True)
class Scorecard:
    partner: Partner
    quarter: Quarter
    currency: str
    revenue_minor: int
    previous_revenue_minor: int
    deals_registered: int
    deals_won: int
    deals_lost: int
    velocity: Velocity
    forecast: PartnerForecast | None
    accuracy: ForecastAccuracy | None
    commissions_minor: int
    payouts_paid_minor: int
    payouts_pending_minor: int
    recurring_revenue_minor: int
    net_revenue_retention_bp: int | None
    internal: Internal | None

    @property
    def growth_bp(self) -> int | None:
        if self.previous_revenue_minor <= 0:
            return None
        return ratio_bp(
            self.revenue_minor - self.previous_revenue_minor, self.previous_revenue_minor
        )

    @property
    def win_rate_bp(self) -> int | None:
        return ratio_bp(self.deals_won, self.deals_won + self.deals_lost)


async def _count(session: AsyncSession, *where: ColumnElement[bool] | bool) -> int:
    found = await session.exec(select(func.count()).select_from(DealRegistration).where(*where))
    return int(found.one())


async def scorecard(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    partner_id: uuid.UUID,
    quarter: str,
    currency: str = "USD",
) -> Scorecard | None:
    """None when the partner does not exist or the caller may not read it."""
    FORECASTS.require(principal, ForecastOp.SCORECARD)
    q = parse_quarter(quarter)
    code = parse_currency(currency)
    partner = await get_readable_partner(session, principal, partner_id)
    if partner is None:
        return None
    vendor_id = principal.vendor_id
    start, end = q.starts_at, q.ends_at
    revenue = await revenue_by_partner(
        session, vendor_id=vendor_id, currency=code, start=start, end=end, partner_ids=[partner.id]
    )
    previous = await revenue_by_partner(
        session, vendor_id=vendor_id, currency=code, start=q.previous().starts_at, end=start,
        partner_ids=[partner.id],
    )  # fmt: skip
    deal = (DealRegistration.partner_id == partner.id, DealRegistration.currency == code)
    registered = await _count(
        session, *deal, col(DealRegistration.submitted_at) >= start,
        col(DealRegistration.submitted_at) < end,
    )  # fmt: skip
    closed_in = (col(DealRegistration.closed_at) >= start, col(DealRegistration.closed_at) < end)
    won = await _count(session, *deal, *closed_in, DealRegistration.status == DealStatus.WON)
    lost = await _count(session, *deal, *closed_in, DealRegistration.status == DealStatus.LOST)
    velocity = (
        await velocities(
            session, vendor_id=vendor_id, partner_ids=[partner.id], currency=code, now=clock.now()
        )
    )[partner.id]
    forecast = (
        await session.exec(
            select(PartnerForecast).where(
                PartnerForecast.partner_id == partner.id, PartnerForecast.quarter == q.key
            )
        )
    ).first()
    commissions = int(
        await session.scalar(
            select(func.coalesce(func.sum(EarningEntry.amount_minor), 0)).where(
                EarningEntry.partner_id == partner.id, EarningEntry.currency == code,
                col(EarningEntry.booked_at) >= start, col(EarningEntry.booked_at) < end,
            )
        ) or 0
    )  # fmt: skip
    statements = await session.exec(
        select(PayoutStatement.status, func.sum(PayoutStatement.total_minor))
        .where(
            PayoutStatement.partner_id == partner.id, PayoutStatement.currency == code,
            col(PayoutStatement.period_start) >= start, col(PayoutStatement.period_start) < end,
        )
        .group_by(col(PayoutStatement.status))
    )  # fmt: skip
    by_status = {status: int(total or 0) for status, total in statements}
    paid = by_status.pop(PayoutStatus.PAID, 0)
    now = clock.now()
    live = await session.exec(
        select(Subscription).where(
            Subscription.partner_id == partner.id, Subscription.currency == code,
            Subscription.status == SubscriptionStatus.ACTIVE,
            col(Subscription.starts_at) <= now, col(Subscription.ends_at) > now,
        )
    )  # fmt: skip
    recurring = sum(arr_of(s.amount_minor, s.term_months) for s in live)
    retention = await net_revenue_retention(session, principal, clock, partner_id=partner.id)
    nrr = next((r.nrr_bp for r in retention if r.currency == code), None)
    internal = None
    if not principal.is_partner:
        margin = int(
            await session.scalar(
                select(func.coalesce(func.sum(CreditedSource.margin_minor), 0)).where(
                    CreditedSource.partner_id == partner.id, CreditedSource.currency == code,
                    col(CreditedSource.effective_at) >= start,
                    col(CreditedSource.effective_at) < end,
                )
            ) or 0
        )  # fmt: skip
        everyone = await revenue_by_partner(
            session, vendor_id=vendor_id, currency=code, start=start, end=end
        )
        total = sum(max(v, 0) for v in everyone.values())
        own = revenue.get(partner.id, 0)
        internal = Internal(
            contribution_margin_minor=margin - commissions,
            payout_ratio_bp=ratio_bp(commissions, own) if own > 0 else None,
            share_of_vendor_revenue_bp=ratio_bp(max(own, 0), total) if total > 0 else None,
        )
    return Scorecard(
        partner=partner, quarter=q, currency=code, revenue_minor=revenue.get(partner.id, 0),
        previous_revenue_minor=previous.get(partner.id, 0), deals_registered=registered,
        deals_won=won, deals_lost=lost, velocity=velocity, forecast=forecast,
        accuracy=await accuracy_of(session, vendor_id, partner.id, q.key),
        commissions_minor=commissions, payouts_paid_minor=paid,
        payouts_pending_minor=sum(by_status.values()), recurring_revenue_minor=recurring,
        net_revenue_retention_bp=nrr, internal=internal,
    )  # fmt: skip
