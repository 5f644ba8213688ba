"""Outbox handlers: credit source events after they commit, and fan out "earnings changed"
notices to subscribers on every process. Both take the dispatcher's runs of events (one
transaction, one notice per partner) and are idempotent (a re-run credits nothing and
publishes a harmless extra notice)."""

from __future__ import annotations

from earnings import ledger, recurring
from earnings.claims import ClaimSignals
from earnings.events import EARNINGS_CHANGED
from infra.clock import Clock
from infra.db import Database
from infra.outbox import OutboxEvent, Registration, batch
from infra.pubsub import Hub


def channel(hub: Hub, partner_id: object) -> str:
    return hub.channel("earnings", partner_id)


def handlers(db: Database, clock: Clock, hub: Hub, signals: ClaimSignals) -> list[Registration]:
    async def credit(events: list[OutboxEvent]) -> None:
        await ledger.credit_many(db, clock, events, signals=signals)

    async def credit_recurring(events: list[OutboxEvent]) -> None:
        await recurring.credit_many(db, clock, events)

    async def publish(events: list[OutboxEvent]) -> None:
        # One notice per partner and run: a subscriber re-reads its summary on any notice.
        last = {event.payload["partner_id"]: event for event in events}
        for partner_id, event in last.items():
            await hub.publish(channel(hub, partner_id), str(event.id))

    return [
        batch(ledger.CREDITED_TYPES, credit),
        batch(recurring.RECURRING_TYPES, credit_recurring),
        batch([EARNINGS_CHANGED], publish),
    ]
