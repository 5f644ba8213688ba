"""The recommendations rules made to a partner, for the partner's next actions."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from incentives.models import RuleFiring, RuleRecommendation
from incentives.repository import readable_firings
from partners.roles import Principal


async def active_recommendations(
    session: AsyncSession, partner_id: uuid.UUID, now: datetime, staff: Principal | None = None
) -> list[RuleRecommendation]:
    """The partner's recommendations that have not expired and were not withdrawn (a
    rule rolled back withdraws its version's), newest first. Partner-safe: a title, a
    text, an optional link or code and the expiry; nothing of the rule behind them.
    ``staff``: vendor staff reading them as the partner, who read those of the firings
    they may read only (a rule aimed at a pilot's treatment arm is not a channel
    manager's: ``repository.readable_firings``)."""
    stmt = select(RuleRecommendation)
    if staff is not None:
        stmt = stmt.where(
            col(RuleRecommendation.firing_id).in_(
                readable_firings(staff).with_only_columns(col(RuleFiring.id))
            )
        )
    rows = await session.exec(
        stmt.where(
            RuleRecommendation.partner_id == partner_id,
            col(RuleRecommendation.expires_at) > now,
            col(RuleRecommendation.withdrawn_at).is_(None),
        ).order_by(col(RuleRecommendation.created_at).desc(), col(RuleRecommendation.id).desc())
    )
    return list(rows)
