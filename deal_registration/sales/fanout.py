"""Live claim updates: after a claim's state change commits, tell the partner's
subscribers (on any process) which claim changed, to which state, by which event.

The notice carries the state its event recorded: a subscriber re-reads the claim (through
its own visibility) but reports the state of the change it is telling about, so a claim
that passes through UNDER_REVIEW to APPROVED before the notices go out is still told as two
changes, in order, and never as the latest state twice."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from deal_registration.sales.models import ClaimState
from infra.outbox import BatchHandler, OutboxEvent
from infra.pubsub import Hub


def claim_channel(hub: Hub, partner_id: object) -> str:
    return hub.channel("sale-claim", partner_id)


@dataclass(frozen=True)
class ClaimNotice:
    claim_id: uuid.UUID
    state: ClaimState | None  # None: a bare claim id (a notice from an older process)
    event_id: uuid.UUID | None
    at: datetime | None

    def encode(self) -> str:
        return json.dumps(
            {
                "claim_id": str(self.claim_id),
                "state": self.state.value if self.state else None,
                "event_id": str(self.event_id) if self.event_id else None,
                "at": self.at.isoformat() if self.at else None,
            }
        )

    @classmethod
    def decode(cls, message: bytes) -> ClaimNotice | None:
        """None for a message that is not a notice."""
        text = message.decode(errors="replace")
        try:
            if not text.startswith("{"):
                return cls(uuid.UUID(text), None, None, None)
            data = json.loads(text)
            return cls(
                claim_id=uuid.UUID(data["claim_id"]),
                state=ClaimState(data["state"]) if data.get("state") else None,
                event_id=uuid.UUID(data["event_id"]) if data.get("event_id") else None,
                at=datetime.fromisoformat(data["at"]) if data.get("at") else None,
            )
        except (ValueError, KeyError, TypeError):
            return None

    @classmethod
    def of(cls, event: OutboxEvent) -> ClaimNotice:
        state = event.payload.get("state")
        return cls(
            claim_id=uuid.UUID(event.payload["claim_id"]),
            state=ClaimState(state) if state else None,
            event_id=event.id,
            at=event.occurred_at,
        )


def publisher(hub: Hub) -> BatchHandler:
    """A batch handler, so these events join the dispatcher's runs; each is published, in
    commit order. (A re-run of a failed run publishes again: subscribers drop repeats by
    event id.)"""

    async def publish(events: list[OutboxEvent]) -> None:
        for event in events:
            await hub.publish(
                claim_channel(hub, event.payload["partner_id"]), ClaimNotice.of(event).encode()
            )

    return publish
