"""Outbox handlers: keep facts and snapshots as events commit.

Signals listen to the events that tell of a partner's day changing: ``EarningsChanged``
(recorded by every credit — sale, reversal, won deal — and every adjustment, after the
ledger rows exist), ``SaleClaimStateChanged`` (claims submitted, approved, rejected) and
``DealStatusChanged`` (registrations submitted, answered, won, lost), and from forecasts
``ForecastAccuracyRecorded`` (a quarter closed: ``forecast_accuracy``) and
``ConcentrationAlerted`` (the partners it names: ``concentration_alert_open``). A run of events
recomputes, in one transaction, the facts of the partners it names from the earliest day
it touches to today, then their snapshots (``signals.maintenance.refresh``): idempotent,
as a partner-day is recomputed from its sources rather than incremented.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import date, timedelta

from deal_registration.events import CLAIM_STATE_CHANGED, DEAL_STATUS_CHANGED
from earnings.events import EARNINGS_CHANGED
from forecasts.events import CONCENTRATION_ALERTED, FORECAST_ACCURACY_RECORDED
from infra.clock import Clock
from infra.db import Database, begin_write
from infra.outbox import OutboxEvent, Registration, batch
from signals import maintenance

SIGNAL_SOURCE_TYPES = (
    EARNINGS_CHANGED, CLAIM_STATE_CHANGED, DEAL_STATUS_CHANGED, FORECAST_ACCURACY_RECORDED,
    CONCENTRATION_ALERTED,
)  # fmt: skip

# An event is recorded a moment after the rows it tells of (a credit's ``credited_at`` is
# read before its EarningsChanged is written): the first minutes of a day also recompute
# the day before, so a credit at 23:59:59.999 is not missed.
SLACK = timedelta(minutes=5)


async def apply(db: Database, clock: Clock, events: list[OutboxEvent]) -> int:
    """Refresh the partners the events name. Returns how many snapshots changed."""
    touched: dict[uuid.UUID, set[uuid.UUID]] = defaultdict(set)
    first: dict[uuid.UUID, date] = {}
    for event in events:
        named = _partners(event)
        if not named:
            continue
        touched[event.vendor_id].update(named)
        day = (event.occurred_at - SLACK).date()
        first[event.vendor_id] = min(first.get(event.vendor_id, day), day)
    changed = 0
    if not touched:
        return 0
    async with db.transaction() as session:
        await begin_write(session)
        for vendor_id, partner_ids in sorted(touched.items()):
            changes = await maintenance.refresh(
                session, clock, vendor_id, sorted(partner_ids), first[vendor_id]
            )
            changed += len(changes)
    return changed


def _partners(event: OutboxEvent) -> set[uuid.UUID]:
    """The partners an event is about: its partner, or those a concentration alert names."""
    if event.type == CONCENTRATION_ALERTED:
        return {uuid.UUID(str(p)) for p in event.payload.get("top_partner_ids", [])}
    partner_id = event.payload.get("partner_id")
    return {uuid.UUID(str(partner_id))} if partner_id is not None else set()


def handlers(db: Database, clock: Clock) -> list[Registration]:
    async def refresh(events: list[OutboxEvent]) -> None:
        await apply(db, clock, events)

    return [batch(SIGNAL_SOURCE_TYPES, refresh)]
