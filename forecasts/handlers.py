"""What forecasts does after other domains' events commit: check the concentration
guardrails of every vendor whose partners' earnings or subscriptions changed (the quarter
to date), and a threshold once it is set."""

from __future__ import annotations

import uuid

from earnings.events import EARNINGS_CHANGED
from forecasts import guardrails
from forecasts.events import CONCENTRATION_THRESHOLD_CHANGED
from infra.clock import Clock
from infra.db import Database
from infra.outbox import OutboxEvent, Registration, batch
from subscriptions.events import SUBSCRIPTION_EVENT_TYPES


def handlers(db: Database, clock: Clock) -> list[Registration]:
    async def check(events: list[OutboxEvent]) -> None:
        # One check per vendor and run: an alert is idempotent per threshold and quarter.
        vendors: dict[uuid.UUID, None] = dict.fromkeys(e.vendor_id for e in events)
        for vendor_id in vendors:
            async with db.transaction() as session:
                await guardrails.evaluate(session, clock, vendor_id)

    return [
        batch([EARNINGS_CHANGED, *SUBSCRIPTION_EVENT_TYPES, CONCENTRATION_THRESHOLD_CHANGED], check)
    ]
