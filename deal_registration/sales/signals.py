"""What earnings asks of sale claims (``earnings.claims.ClaimSignals``), answered from the
claim tables: open risk flags per claim, and a partner's share of approved claims."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from deal_registration.sales.models import ClaimState, RiskFlag, SaleClaim

# Approved at some point (a reversal is a refund, which earnings counts separately).
_APPROVED = (ClaimState.AUTO_APPROVED, ClaimState.APPROVED, ClaimState.REVERSED)
_DECIDED = (*_APPROVED, ClaimState.REJECTED)


class SaleClaimSignals:
    async def risk_flags(
        self, session: AsyncSession, vendor_id: uuid.UUID, claim_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[str]]:
        if not claim_ids:
            return {}
        rows = await session.exec(
            select(RiskFlag)
            .where(RiskFlag.vendor_id == vendor_id, col(RiskFlag.claim_id).in_(list(claim_ids)))
            .order_by(col(RiskFlag.id))
        )
        flags: dict[uuid.UUID, list[str]] = defaultdict(list)
        for flag in rows:
            flags[flag.claim_id].append(
                f"{flag.kind.value}: {flag.detail}" if flag.detail else flag.kind.value
            )
        return dict(flags)

    async def approved_share_bp(
        self,
        session: AsyncSession,
        vendor_id: uuid.UUID,
        partner_id: uuid.UUID,
        since: datetime,
        until: datetime,
    ) -> int | None:
        rows = await session.exec(
            select(SaleClaim.state, func.count())
            .where(
                SaleClaim.vendor_id == vendor_id,
                SaleClaim.partner_id == partner_id,
                col(SaleClaim.created_at) >= since,
                col(SaleClaim.created_at) < until,
                col(SaleClaim.state).in_(_DECIDED),
            )
            .group_by(SaleClaim.state)
        )
        counts = {state: int(n) for state, n in rows}
        decided = sum(counts.values())
        if decided == 0:
            return None
        approved = sum(counts.get(s, 0) for s in _APPROVED)
        return approved * 10_000 // decided

    async def oldest_decided_claim(
        self,
        session: AsyncSession,
        vendor_id: uuid.UUID,
        partner_id: uuid.UUID,
        since: datetime,
        until: datetime,
    ) -> datetime | None:
        oldest: datetime | None = await session.scalar(
            select(func.min(SaleClaim.created_at)).where(
                SaleClaim.vendor_id == vendor_id,
                SaleClaim.partner_id == partner_id,
                col(SaleClaim.created_at) >= since,
                col(SaleClaim.created_at) < until,
                col(SaleClaim.state).in_(_DECIDED),
            )
        )
        return oldest
