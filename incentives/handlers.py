"""Outbox handlers: evaluate the rules that read the signals a snapshot changed, and a rule
at once when it becomes active (an approval, a rollback, a resume)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import date

from sqlmodel import col, select

from incentives.evaluation import evaluate_vendor
from incentives.events import RULE_ACTIVATED, RuleActivated
from incentives.models import IncentiveRule, RuleStatus
from infra.clock import Clock
from infra.db import Database, begin_write
from infra.outbox import OutboxEvent, Registration, batch
from signals.events import SIGNALS_CHANGED, SignalsChanged
from signals.maintenance import take_due

TRIGGER = "SIGNALS"
ACTIVATION_TRIGGER = "ACTIVATION"


async def apply(db: Database, clock: Clock, events: list[OutboxEvent]) -> int:
    """Evaluate, per vendor and snapshot day, the active rules reading a changed signal for
    the partners whose snapshots changed. Returns how many firings were written (a re-run
    writes none: firings are unique per rule version, activation, partner and period).

    Only today's snapshots are evaluated. A past day's changes late (an event dispatched
    after midnight, a dispatcher that was down, yesterday re-taken by the daily job) and
    moves today's snapshot with it, whose trailing windows hold that day: a rule fires on
    what is true now, in the current period, never for a period gone by (each such firing
    placed its action now, on figures since superseded)."""
    today = clock.now().date()
    touched: dict[tuple[uuid.UUID, date], tuple[set[uuid.UUID], set[str]]] = defaultdict(
        lambda: (set(), set())
    )
    for event in events:
        changed = SignalsChanged.parse(event.payload)
        if changed.day < today:
            continue
        partners, names = touched[(changed.vendor_id, changed.day)]
        partners.add(changed.partner_id)
        names.update(changed.names)
    fired = 0
    for (vendor_id, day), (partners, names) in sorted(touched.items()):
        async with db.transaction() as session:
            await begin_write(session)
            out = await evaluate_vendor(
                session, clock, vendor_id=vendor_id, day=day, trigger=TRIGGER,
                partner_ids=sorted(partners), changed=names,
            )  # fmt: skip
            fired += len(out.firings)
    return fired


async def activate(db: Database, clock: Clock, events: list[OutboxEvent]) -> int:
    """Evaluate each rule activated, for every partner of its vendor on today's signals
    (today's snapshots of partners that had none are taken first, as the daily run does).
    A rule changed again since its event (paused, another version, another activation) is
    left alone: the later change has its own event. Returns how many firings were written
    (a re-run writes none)."""
    wanted: dict[uuid.UUID, dict[uuid.UUID, RuleActivated]] = defaultdict(dict)
    for event in events:
        activated = RuleActivated.parse(event.payload)
        wanted[event.vendor_id][activated.rule_id] = activated  # the latest of each rule
    fired = 0
    today = clock.now().date()
    for vendor_id, activations in sorted(wanted.items()):
        # In a transaction of its own, like the daily run: the vendor's signal lock is not
        # held through the evaluation.
        async with db.transaction() as session:
            await take_due(session, clock, vendor_id)
        async with db.transaction() as session:
            await begin_write(session)
            current = await session.exec(
                select(IncentiveRule).where(col(IncentiveRule.id).in_(list(activations)))
            )
            due = [
                rule.id
                for rule in current
                if rule.status is RuleStatus.ACTIVE
                and rule.active_version_id == activations[rule.id].version_id
                and rule.activation == activations[rule.id].activation
            ]
            if not due:
                continue
            out = await evaluate_vendor(
                session, clock, vendor_id=vendor_id, day=today, trigger=ACTIVATION_TRIGGER,
                rule_ids=due,
            )  # fmt: skip
            fired += len(out.firings)
    return fired


def handlers(db: Database, clock: Clock) -> list[Registration]:
    async def evaluate(events: list[OutboxEvent]) -> None:
        await apply(db, clock, events)

    async def activated(events: list[OutboxEvent]) -> None:
        await activate(db, clock, events)

    return [batch([SIGNALS_CHANGED], evaluate), batch([RULE_ACTIVATED], activated)]
