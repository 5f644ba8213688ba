"""What partners actually sold: qualified revenue credited by earnings (sales less their
reversals, won deals carry none), by the instant it is effective (the sale's date)."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from earnings.models import CreditedSource


async def revenue_by_partner(
    session: AsyncSession,
    *,
    vendor_id: uuid.UUID,
    currency: str,
    start: datetime,
    end: datetime,
    partner_ids: Collection[uuid.UUID] | None = None,
) -> dict[uuid.UUID, int]:
    """Revenue effective in ``[start, end)`` per partner (partners without any absent)."""
    stmt = (
        select(CreditedSource.partner_id, func.sum(CreditedSource.revenue_minor))
        .where(
            CreditedSource.vendor_id == vendor_id,
            CreditedSource.currency == currency,
            col(CreditedSource.effective_at) >= start,
            col(CreditedSource.effective_at) < end,
        )
        .group_by(col(CreditedSource.partner_id))
    )
    if partner_ids is not None:
        stmt = stmt.where(col(CreditedSource.partner_id).in_(list(partner_ids)))
    return {pid: int(total or 0) for pid, total in await session.exec(stmt)}
