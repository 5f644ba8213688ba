"""Tier reached or lost: a credit that moves a partner across a tier of a program records a
``TierChanged`` event in the crediting transaction (notifications tell the partner). The
tier before is the one the same standing had without this credit."""

from __future__ import annotations

import uuid

from sqlmodel.ext.asyncio.session import AsyncSession

from earnings import programs
from earnings.events import TierChanged
from earnings.models import Program
from earnings.programs import Rules, Standing
from infra.clock import Clock
from infra.outbox import OutboxEvent, record_event


def without(standing: Standing, revenue_minor: int) -> Standing:
    """The standing as it was before a credit of ``revenue_minor`` (negative: a reversal)."""
    approved = standing.approved_revenue_minor - max(revenue_minor, 0)
    reversed_ = standing.reversed_revenue_minor - max(-revenue_minor, 0)
    return Standing(
        qualified_revenue_minor=standing.qualified_revenue_minor - revenue_minor,
        approved_revenue_minor=approved,
        reversed_revenue_minor=reversed_,
        approved_share_bp=standing.approved_share_bp,
    )


async def record_if_changed(
    session: AsyncSession,
    clock: Clock,
    *,
    source: OutboxEvent,
    partner_id: uuid.UUID,
    program: Program,
    rules: Rules,
    before: Standing,
    after: Standing,
    currency: str,
) -> TierChanged | None:
    old = programs.select_tier(rules, before).tier
    new = programs.select_tier(rules, after).tier
    old_threshold = old.threshold_minor if old else -1
    new_threshold = new.threshold_minor if new else -1
    if old_threshold == new_threshold:
        return None
    reached = new_threshold > old_threshold
    moved = new if reached else old
    assert moved is not None
    changed = TierChanged(
        partner_id=partner_id, program_id=program.id, program_name=program.name,
        reached=reached, from_tier=old.name if old else None, to_tier=new.name if new else None,
        threshold_minor=moved.threshold_minor,
        qualified_revenue_minor=after.qualified_revenue_minor, window_days=rules.window_days,
        currency=currency, source_event_id=source.id,
    )  # fmt: skip
    await record_event(
        session, clock, vendor_id=source.vendor_id, type=changed.type, aggregate_id=partner_id,
        payload=changed.to_payload(),
    )  # fmt: skip
    return changed
