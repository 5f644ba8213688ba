"""Outbox handlers: credit source events after they commit, and fan out "earnings changed"
notices to subscribers on every process. Both are idempotent (a re-run credits nothing and
publishes a harmless extra notice)."""

from __future__ import annotations

from earnings import ledger
from infra.clock import Clock
from infra.db import Database
from infra.outbox import Dispatcher, OutboxEvent
from infra.pubsub import Hub


def channel(hub: Hub, partner_id: object) -> str:
    return hub.channel("earnings", partner_id)


def register(dispatcher: Dispatcher, db: Database, clock: Clock, hub: Hub) -> None:
    async def credit(event: OutboxEvent) -> None:
        await ledger.credit(db, clock, event)

    async def publish(event: OutboxEvent) -> None:
        await hub.publish(channel(hub, event.payload["partner_id"]), str(event.id))

    for event_type in ledger.CREDITED_TYPES:
        dispatcher.register(event_type, credit)
    dispatcher.register(ledger.EARNINGS_CHANGED, publish)
