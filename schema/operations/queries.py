from __future__ import annotations

import strawberry
from strawberry import Info

from infra.outbox import EventState, in_states
from partners.outbox import readable_outbox_events
from partners.policy import TENANCY, TenancyOp
from schema.context import Context
from schema.operations.types import OutboxEventType
from schema.permissions import allowed
from schema.relay import Connection, paginate


@strawberry.type
class OperationsQuery:
    @strawberry.field(
        permission_classes=[allowed(TENANCY, TenancyOp.OUTBOX_EVENTS_READ)],
        description="Your vendor's outbox events in the given states (default: DEAD and "
        "RETRYING, the ones whose handlers fail), oldest first. Vendor admins only. An "
        "operator re-queues or discards a dead event with `channelboard outbox retry|discard`.",
    )
    async def outbox_events(
        self,
        info: Info[Context, None],
        states: list[EventState] | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[OutboxEventType] | None:
        principal = info.context.caller
        wanted = states or [EventState.DEAD, EventState.RETRYING]
        return await paginate(
            info.context, readable_outbox_events(principal).where(in_states(wanted)),
            first=first, after=after, to_node=OutboxEventType.from_model,
        )  # fmt: skip
