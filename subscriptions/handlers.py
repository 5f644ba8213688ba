"""Outbox handlers: approved sales and won deals of subscription products start or extend
subscriptions (``origination``). Idempotent: each line's change is keyed by its event."""

from __future__ import annotations

from infra.clock import Clock
from infra.db import Database
from infra.outbox import OutboxEvent, Registration, batch
from subscriptions import origination


def handlers(db: Database, clock: Clock) -> list[Registration]:
    async def originate(events: list[OutboxEvent]) -> None:
        await origination.apply_many(db, clock, events)

    return [batch(origination.ORIGIN_TYPES, originate)]
