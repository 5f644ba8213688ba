"""`webhookEventTypes`, `webhookEndpoints`, `webhookDeliveries` (the delivery log). Vendor
admins and finance (webhooks/policy.py); every row is the caller's vendor's."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry import Info

from infra.errors import DomainError
from schema.context import Context
from schema.errors import query_error
from schema.permissions import allowed
from schema.relay import Connection, paginate, row_id
from schema.webhooks.types import WebhookDeliveryType, WebhookEndpointType, WebhookEventType
from webhooks import repository
from webhooks.event_types import EVENT_TYPES
from webhooks.models import DeliveryStatus
from webhooks.policy import WEBHOOKS, WebhookOp


@strawberry.type
class WebhooksQuery:
    @strawberry.field(
        permission_classes=[allowed(WEBHOOKS, WebhookOp.EVENT_TYPES_READ)],
        description="The event types an endpoint can subscribe to, with what each means.",
    )
    def webhook_event_types(self) -> list[WebhookEventType] | None:
        return [WebhookEventType(name=n, description=d) for n, d in EVENT_TYPES.items()]

    @strawberry.field(
        permission_classes=[allowed(WEBHOOKS, WebhookOp.ENDPOINTS_READ)],
        description="Your vendor's webhook endpoints, oldest first.",
    )
    async def webhook_endpoints(
        self, info: Info[Context, None], first: int | None = None, after: str | None = None
    ) -> Connection[WebhookEndpointType] | None:
        return await paginate(
            info.context, repository.readable_endpoints(info.context.caller),
            first=first, after=after, to_node=WebhookEndpointType.from_model,
        )  # fmt: skip

    @strawberry.field(
        permission_classes=[allowed(WEBHOOKS, WebhookOp.DELIVERIES_READ)],
        description="The delivery log, newest first: each delivery with its attempts (request "
        "headers, response status and body, latency, error class). Filter by endpoint, by "
        "outbox event id (the webhook-id of its messages, for most types), by status, and by "
        "when the event occurred [occurredFrom, occurredTo) (INVALID_RANGE unless "
        "occurredFrom is before occurredTo).",
    )
    async def webhook_deliveries(
        self,
        info: Info[Context, None],
        endpoint_id: strawberry.ID | None = None,
        event_id: str | None = None,
        status: DeliveryStatus | None = None,
        occurred_from: datetime | None = None,
        occurred_to: datetime | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[WebhookDeliveryType] | None:
        try:
            stmt = repository.deliveries_matching(
                info.context.caller, event_id=event_id, status=status,
                endpoint_id=row_id(endpoint_id, "WebhookEndpoint") if endpoint_id else None,
                occurred_from=occurred_from, occurred_to=occurred_to,
            )  # fmt: skip
        except DomainError as error:
            raise query_error(error) from error
        return await paginate(
            info.context, stmt, first=first, after=after,
            to_node=WebhookDeliveryType.from_model, descending=True,
        )  # fmt: skip
