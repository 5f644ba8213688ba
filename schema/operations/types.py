from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry import relay

from infra.outbox import EventState, OutboxEvent, state_of
from schema.relay import visible_nodes

OutboxEventStateEnum = strawberry.enum(
    EventState,
    name="OutboxEventState",
    description="PENDING: not tried yet. RETRYING: a handler failed; it runs again at "
    "nextAttemptAt. DEAD: it failed every attempt and is set aside (later events go on) "
    "until an operator retries or discards it. DISPATCHED, DISCARDED: done.",
)


@strawberry.type(
    name="OutboxEvent",
    description="A recorded state change that earnings, contests and live feeds react to.",
)
class OutboxEventType(relay.Node):
    id: relay.NodeID[str]
    type: str
    aggregate_id: str = strawberry.field(
        description="The id of the record it is about (a sale claim, a deal, a contest)."
    )
    state: EventState
    attempts: int = strawberry.field(description="Failed attempts since it was (re)queued.")
    recorded_at: datetime
    next_attempt_at: datetime | None
    last_error_type: str | None
    last_error: str | None = strawberry.field(description="The last failure's message.")
    dead_at: datetime | None
    dispatched_at: datetime | None
    retried_at: datetime | None
    retried_by: str | None
    discarded_at: datetime | None
    discarded_by: str | None

    @classmethod
    def from_model(cls, e: OutboxEvent) -> OutboxEventType:
        return cls(
            id=str(e.id), type=e.type, aggregate_id=str(e.aggregate_id), state=state_of(e),
            attempts=e.attempts, recorded_at=e.recorded_at, next_attempt_at=e.next_attempt_at,
            last_error_type=e.last_error_type, last_error=e.last_error, dead_at=e.dead_at,
            dispatched_at=e.dispatched_at, retried_at=e.retried_at, retried_by=e.retried_by,
            discarded_at=e.discarded_at, discarded_by=e.discarded_by,
        )  # fmt: skip

    resolve_nodes = visible_nodes(None)  # reachable through `outboxEvents` only
