"""The recommendations rules made to a partner, for the partner's next actions."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from incentives.models import RuleRecommendation


async def active_recommendations(
    session: AsyncSession, partner_id: uuid.UUID, now: datetime
) -> list[RuleRecommendation]:
    """The partner's recommendations that have not expired and were not withdrawn (a
    rule rolled back withdraws its version's), newest first. Partner-safe: a title, a
    text, an optional link or code and the expiry; nothing of the rule behind them."""
    rows = await session.exec(
        select(RuleRecommendation)
        .where(
            RuleRecommendation.partner_id == partner_id,
            col(RuleRecommendation.expires_at) > now,
            col(RuleRecommendation.withdrawn_at).is_(None),
        )
        .order_by(col(RuleRecommendation.created_at).desc(), col(RuleRecommendation.id).desc())
    )
    return list(rows)
