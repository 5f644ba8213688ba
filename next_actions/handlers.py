"""Live next best actions: a notice per partner on the events that change what its
actions are built from (its earnings and holds, its claims, its deals, its sales, a rule's
recommendations appearing or withdrawn), published through the Hub so a subscriber on any
process re-reads its list."""

from __future__ import annotations

from deal_registration.events import (
    CLAIM_STATE_CHANGED,
    DEAL_STATUS_CHANGED,
    DEAL_WON,
    SALE_APPROVED,
    SALE_REVERSED,
)
from earnings.events import EARNINGS_CHANGED
from incentives.events import RULE_EFFECTS_ENDED, RULE_FIRED
from infra.outbox import OutboxEvent, Registration, batch
from infra.pubsub import Hub

TRIGGERS = [
    EARNINGS_CHANGED,
    CLAIM_STATE_CHANGED,
    DEAL_STATUS_CHANGED,
    DEAL_WON,
    SALE_APPROVED,
    SALE_REVERSED,
    RULE_FIRED,  # a rule's firing may recommend an action
    RULE_EFFECTS_ENDED,  # a rollback withdraws its recommendations
]


def channel(hub: Hub, partner_id: object) -> str:
    return hub.channel("next-actions", partner_id)


def handlers(hub: Hub, triggers: list[str] | None = None) -> list[Registration]:
    """``triggers`` adds other event types that carry a ``partner_id``."""

    async def publish(events: list[OutboxEvent]) -> None:
        # One notice per partner and run; a subscriber re-reads on any notice.
        last = {str(e.payload["partner_id"]): e for e in events if e.payload.get("partner_id")}
        for partner_id, event in last.items():
            await hub.publish(channel(hub, partner_id), str(event.id))

    return [batch([*TRIGGERS, *(triggers or [])], publish)]
