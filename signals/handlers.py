"""Outbox handlers: keep facts and snapshots as events commit.

Signals listen to the events that tell of a partner's day changing: ``EarningsChanged``
(recorded by every credit — sale, reversal, won deal — and every adjustment, after the
ledger rows exist), ``SaleClaimStateChanged`` (claims submitted, approved, rejected) and
``DealStatusChanged`` (registrations submitted, answered, won, lost), and from forecasts
``ForecastAccuracyRecorded`` (a quarter closed: ``forecast_accuracy``) and
``ConcentrationAlerted`` (the partners it names: ``concentration_alert_open``). A run of events
recomputes, in one transaction, the facts of the partners it names, and their snapshots.

The usual case — events of a sale, a claim or a deal dated today, of a partner whose
snapshot of today exists (the daily job takes it at midnight) — is advanced
(``signals.maintenance.advance``): only today's facts of the kinds of source the events
tell of are recomputed, and the snapshot moves by them over its stored basis (the days
before today are closed), a few statements whatever the windows. Anything else (events
dated before today, forecast events, a partner without today's snapshot) is refreshed in
full (``signals.maintenance.refresh``): its facts from the earliest day it touches to
today, then its snapshots. Either way the partner's reps move with it (``signals.reps``).
Both are idempotent: a partner-day is recomputed from its sources rather than
incremented.

A claim's approval (or reversal) is one run, not two: its notice says a credit follows
(``credit_follows``) and is skipped; the credit's ``EarningsChanged`` says when the claim
was decided (``source_at``) and moves both the credits and the claims of the partner's
day (from the decision's day, should the credit come after midnight). A credit always
records its ``EarningsChanged`` (with no entries when no program applies), so no decision
is left uncounted; other claim changes (submitted, rejected) are handled by their notice.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import date, datetime, timedelta

from deal_registration.events import CLAIM_STATE_CHANGED, DEAL_STATUS_CHANGED
from earnings.events import EARNINGS_CHANGED
from forecasts.events import CONCENTRATION_ALERTED, FORECAST_ACCURACY_RECORDED
from infra.clock import Clock
from infra.db import Database, begin_write
from infra.outbox import OutboxEvent, Registration, batch
from signals import locks, maintenance
from signals.facts import CLAIMS, CREDITS, DEALS, as_day

SIGNAL_SOURCE_TYPES = (
    EARNINGS_CHANGED, CLAIM_STATE_CHANGED, DEAL_STATUS_CHANGED, FORECAST_ACCURACY_RECORDED,
    CONCENTRATION_ALERTED,
)  # fmt: skip

# An event is recorded a moment after the rows it tells of (a credit's ``credited_at`` is
# read before its EarningsChanged is written): the first minutes of a day also recompute
# the day before, so a credit at 23:59:59.999 is not missed.
SLACK = timedelta(minutes=5)


# The kinds of source (``signals.facts.CATEGORIES``) an event of the day can change.
CATEGORY = {EARNINGS_CHANGED: CREDITS, CLAIM_STATE_CHANGED: CLAIMS, DEAL_STATUS_CHANGED: DEALS}


def _kinds(event: OutboxEvent) -> tuple[set[str], date] | None:
    """The kinds of source the event moves and the first day it moves them; None for an
    event left to another. A claim's approval or reversal (``credit_follows``) is left to
    its credit's EarningsChanged, which carries the decision's instant (``source_at``) and
    moves the claims with the credits: one run, one write transaction per approval."""
    day = (event.occurred_at - SLACK).date()
    category = CATEGORY.get(event.type)
    if category is None:
        return set(), day
    if event.type == CLAIM_STATE_CHANGED and event.payload.get("credit_follows"):
        return None
    if event.type == EARNINGS_CHANGED and (at := event.payload.get("source_at")):
        return {CREDITS, CLAIMS}, min(day, as_day(datetime.fromisoformat(at)))
    return {category}, day


async def apply(db: Database, clock: Clock, events: list[OutboxEvent]) -> int:
    """Advance or refresh the partners the events name. Returns how many snapshots changed."""
    today = clock.now().date()
    touched: dict[uuid.UUID, set[uuid.UUID]] = defaultdict(set)
    first: dict[uuid.UUID, date] = {}
    quick: dict[uuid.UUID, dict[uuid.UUID, set[str]]] = defaultdict(lambda: defaultdict(set))
    for event in events:
        named = _partners(event)
        kinds = _kinds(event)
        if not named or kinds is None:
            continue
        categories, day = kinds
        if categories and day == today:
            for partner_id in named:
                quick[event.vendor_id][partner_id].update(categories)
            continue
        touched[event.vendor_id].update(named)
        first[event.vendor_id] = min(first.get(event.vendor_id, day), day)
    if not touched and not quick:
        return 0
    changed = 0
    async with db.transaction() as session:
        await begin_write(session)
        await locks.hold(session, {*quick, *touched})  # every vendor of the run, first
        for vendor_id, partners in sorted(quick.items()):
            # A partner refreshed in full anyway is not advanced first.
            wanted = {p: c for p, c in partners.items() if p not in touched.get(vendor_id, ())}
            if not wanted:
                continue
            changes, rest = await maintenance.advance(session, clock, vendor_id, wanted)
            changed += len(changes)
            if rest:
                touched[vendor_id].update(rest)
                first[vendor_id] = min(first.get(vendor_id, today), today)
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
