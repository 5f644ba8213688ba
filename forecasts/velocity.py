"""Pipeline velocity: how much revenue a partner's registered pipeline turns into per day.

    velocity (per day) = open deals × win rate × average won value ÷ average cycle (days)

- open deals: registered deals open now (submitted, under review, approved and not expired);
- win rate: won ÷ (won + lost) among the deals closed in the last ``WINDOW`` (365 days);
- average won value: the mean estimated value of those won deals;
- cycle: the mean days from submission to winning of those won deals (at least 1 day each).

Computed exactly in integers and rounded once (half away from zero), in minor units of the
currency per day. None when the partner won or lost no deal in the window (no win rate)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from deal_registration.registrations.models import DealRegistration, DealStatus
from earnings.rounding import divide_rounded, ratio_bp
from forecasts.pipeline import is_open
from forecasts.policy import FORECASTS, ForecastOp
from forecasts.rollup import parse_currency
from infra.clock import Clock
from partners.models import Partner
from partners.repository import readable_partners
from partners.roles import Principal

WINDOW = timedelta(days=365)
DAY = 86_400


@dataclass
class Velocity:
    partner_id: uuid.UUID
    currency: str
    open_deals: int = 0
    open_value_minor: int = 0
    won: int = 0
    lost: int = 0
    won_value_minor: int = 0
    cycle_seconds: int = 0  # summed over the won deals

    @property
    def win_rate_bp(self) -> int | None:
        return ratio_bp(self.won, self.won + self.lost)

    @property
    def average_won_minor(self) -> int | None:
        return divide_rounded(self.won_value_minor, self.won) if self.won else None

    @property
    def cycle_days(self) -> float | None:
        return round(self.cycle_seconds / self.won / DAY, 1) if self.won else None

    @property
    def velocity_minor_per_day(self) -> int | None:
        decided = self.won + self.lost
        if decided == 0:
            return None
        if self.won == 0:
            return 0
        # open × (won/decided) × (won_value/won) ÷ (cycle_seconds/(won × DAY))
        return divide_rounded(
            self.open_deals * self.won_value_minor * self.won * DAY, decided * self.cycle_seconds
        )


async def velocities(
    session: AsyncSession,
    *,
    vendor_id: uuid.UUID,
    partner_ids: Collection[uuid.UUID],
    currency: str,
    now: datetime,
) -> dict[uuid.UUID, Velocity]:
    """Each partner's velocity (every partner given has one, maybe all zeros)."""
    ids = list(partner_ids)
    out = {pid: Velocity(pid, currency) for pid in ids}
    if not ids:
        return out
    base = (DealRegistration.vendor_id == vendor_id, DealRegistration.currency == currency)
    opened = await session.exec(
        select(
            DealRegistration.partner_id,
            func.count(),
            func.sum(DealRegistration.estimated_value_minor),
        )
        .where(*base, col(DealRegistration.partner_id).in_(ids), is_open(now))
        .group_by(col(DealRegistration.partner_id))
    )
    for pid, count, value in opened:
        out[pid].open_deals = int(count)
        out[pid].open_value_minor = int(value or 0)
    closed = await session.exec(
        select(DealRegistration).where(
            *base,
            col(DealRegistration.partner_id).in_(ids),
            col(DealRegistration.status).in_([DealStatus.WON, DealStatus.LOST]),
            col(DealRegistration.closed_at) >= now - WINDOW,
            col(DealRegistration.closed_at) < now,
        )
    )
    cycles: dict[uuid.UUID, int] = defaultdict(int)
    for deal in closed:
        v = out[deal.partner_id]
        if deal.status is DealStatus.LOST:
            v.lost += 1
            continue
        v.won += 1
        v.won_value_minor += deal.estimated_value_minor
        assert deal.closed_at is not None  # selected by it
        seconds = int((deal.closed_at - (deal.submitted_at or deal.created_at)).total_seconds())
        cycles[deal.partner_id] += max(seconds, DAY)
    for pid, seconds in cycles.items():
        out[pid].cycle_seconds = seconds
    return out


async def readable_velocities(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    currency: str,
    partner_id: uuid.UUID | None = None,
) -> list[tuple[Partner, Velocity]]:
    """The velocity of each partner the caller may read (a partner admin: its own), by
    name; only ``partner_id`` when given."""
    FORECASTS.require(principal, ForecastOp.VELOCITY)
    code = parse_currency(currency)
    stmt = readable_partners(principal)
    if partner_id is not None:
        stmt = stmt.where(Partner.id == partner_id)
    partners = list(await session.exec(stmt.order_by(col(Partner.name), col(Partner.id))))
    found = await velocities(
        session, vendor_id=principal.vendor_id, partner_ids=[p.id for p in partners],
        currency=code, now=clock.now(),
    )  # fmt: skip
    return [(p, found[p.id]) for p in partners]
