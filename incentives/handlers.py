"""Outbox handlers: evaluate the rules that read the signals a snapshot changed."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import date

from incentives.evaluation import evaluate_vendor
from infra.clock import Clock
from infra.db import Database, begin_write
from infra.outbox import OutboxEvent, Registration, batch
from signals.events import SIGNALS_CHANGED, SignalsChanged

TRIGGER = "SIGNALS"


async def apply(db: Database, clock: Clock, events: list[OutboxEvent]) -> int:
    """Evaluate, per vendor and snapshot day, the active rules reading a changed signal for
    the partners whose snapshots changed. Returns how many firings were written (a re-run
    writes none: firings are unique per rule version, partner and period)."""
    touched: dict[tuple[uuid.UUID, date], tuple[set[uuid.UUID], set[str]]] = defaultdict(
        lambda: (set(), set())
    )
    for event in events:
        changed = SignalsChanged.parse(event.payload)
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


def handlers(db: Database, clock: Clock) -> list[Registration]:
    async def evaluate(events: list[OutboxEvent]) -> None:
        await apply(db, clock, events)

    return [batch([SIGNALS_CHANGED], evaluate)]
