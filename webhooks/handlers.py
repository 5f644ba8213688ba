"""What webhooks does after events commit: turn each into delivery rows for the subscribed
endpoints of its vendor, then wake this process's delivery worker (the one beside the
dispatcher that ran the handler; other processes' workers find the rows on their poll)."""

from __future__ import annotations

from infra.clock import Clock
from infra.db import Database
from infra.outbox import OutboxEvent, Registration, batch
from webhooks.deliveries import SOURCE_TYPES, create_for_events
from webhooks.worker import DeliveryWorker


def handlers(db: Database, clock: Clock, worker: DeliveryWorker) -> list[Registration]:
    async def fan_out(events: list[OutboxEvent]) -> None:
        if await create_for_events(db, clock, events):
            worker.wake()

    return [batch(SOURCE_TYPES, fan_out)]
