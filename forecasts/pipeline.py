"""A partner's open pipeline, as forecasts read it: registered deals still open (submitted,
under review, approved and not expired), each weighted by its stage's probability
(``stages``)."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import ColumnElement, and_, case, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from deal_registration.registrations.models import DealRegistration, DealStatus
from forecasts.stages import STAGE_PROBABILITY_BP


def is_open(now: datetime) -> ColumnElement[bool]:
    """Submitted, under review, or approved and not expired at ``now``."""
    return or_(
        col(DealRegistration.status).in_([DealStatus.SUBMITTED, DealStatus.UNDER_REVIEW]),
        and_(
            col(DealRegistration.status) == DealStatus.APPROVED,
            or_(
                col(DealRegistration.expires_at).is_(None),
                col(DealRegistration.expires_at) > now,
            ),
        ),
    )


def probability_bp() -> ColumnElement[int]:
    """The stage probability of a deal row, as SQL (0 for stages outside the pipeline)."""
    return case(
        *((col(DealRegistration.status) == s, bp) for s, bp in STAGE_PROBABILITY_BP.items()),
        else_=0,
    )


@dataclass(frozen=True)
class OpenDeal:
    id: uuid.UUID
    partner_id: uuid.UUID
    status: DealStatus
    value_minor: int
    expected_close: date

    @property
    def probability_bp(self) -> int:
        return STAGE_PROBABILITY_BP.get(self.status, 0)


async def open_deals(
    session: AsyncSession,
    *,
    vendor_id: uuid.UUID,
    partner_ids: Collection[uuid.UUID],
    currency: str,
    now: datetime,
    closing_from: date | None = None,
    closing_before: date | None = None,
) -> list[OpenDeal]:
    stmt = select(DealRegistration).where(
        DealRegistration.vendor_id == vendor_id,
        col(DealRegistration.partner_id).in_(list(partner_ids)),
        DealRegistration.currency == currency,
        is_open(now),
    )
    if closing_from is not None:
        stmt = stmt.where(col(DealRegistration.expected_close_date) >= closing_from)
    if closing_before is not None:
        stmt = stmt.where(col(DealRegistration.expected_close_date) < closing_before)
    rows = await session.exec(stmt)
    return [
        OpenDeal(d.id, d.partner_id, d.status, d.estimated_value_minor, d.expected_close_date)
        for d in rows
    ]
