"""Live claim updates: after a claim's state change commits, tell the partner's
subscribers (on any process) which claim changed; they re-read it themselves."""

from __future__ import annotations

from infra.outbox import BatchHandler, OutboxEvent
from infra.pubsub import Hub


def claim_channel(hub: Hub, partner_id: object) -> str:
    return hub.channel("sale-claim", partner_id)


def publisher(hub: Hub) -> BatchHandler:
    """A batch handler, so these events join the dispatcher's runs; each is published."""

    async def publish(events: list[OutboxEvent]) -> None:
        for event in events:
            await hub.publish(
                claim_channel(hub, event.payload["partner_id"]), event.payload["claim_id"]
            )

    return publish
