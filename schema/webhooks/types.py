"""Webhook endpoints, deliveries and attempts (the delivery log) as GraphQL types. A
secret is never a field: it is answered once, in the payload of the mutation that made it."""

from __future__ import annotations

import uuid
from datetime import datetime

import strawberry
from strawberry import Info, relay
from strawberry.dataloader import DataLoader

from schema.context import Context
from schema.loaders import list_loader
from schema.relay import global_id, visible_nodes
from webhooks import repository
from webhooks.models import (
    DeliveryStatus,
    DisabledReason,
    EndpointStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)

EndpointStatusEnum = strawberry.enum(
    EndpointStatus,
    name="WebhookEndpointStatus",
    description="ACTIVE: deliveries are sent. DISABLED: nothing is sent (see disabledReason).",
)
DisabledReasonEnum = strawberry.enum(
    DisabledReason,
    name="WebhookDisabledReason",
    description="MANUAL: a vendor admin disabled it. FAILING: every delivery failed for more "
    "than 24 hours, so it was disabled automatically; enable it once it answers again, "
    "then replay what it missed.",
)
DeliveryStatusEnum = strawberry.enum(
    DeliveryStatus,
    name="WebhookDeliveryStatus",
    description="PENDING: due at nextAttemptAt. DELIVERED: the endpoint answered 2xx. FAILED: "
    "every retry failed (about a day), or the endpoint was deleted.",
)


@strawberry.type(description="An event type an endpoint can subscribe to.")
class WebhookEventType:
    name: str
    description: str


@strawberry.type(
    name="WebhookEndpoint",
    description="Where your vendor's events are sent, signed per the Standard Webhooks "
    "specification. The signing secret is shown only when it is made.",
)
class WebhookEndpointType(relay.Node):
    id: relay.NodeID[str]
    url: str
    description: str
    event_types: list[str]
    status: EndpointStatus
    disabled_reason: DisabledReason | None
    disabled_at: datetime | None
    failing_since: datetime | None = strawberry.field(
        description="The first failed attempt since the last success (null when healthy)."
    )
    previous_secret_expires_at: datetime | None = strawberry.field(
        description="While a rotation overlaps, the previous secret also signs until then."
    )
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_model(cls, e: WebhookEndpoint) -> WebhookEndpointType:
        return cls(
            id=str(e.id), url=e.url, description=e.description, event_types=list(e.event_types),
            status=e.status, disabled_reason=e.disabled_reason, disabled_at=e.disabled_at,
            failing_since=e.failing_since,
            previous_secret_expires_at=e.previous_secret_expires_at, created_at=e.created_at,
            updated_at=e.updated_at,
        )  # fmt: skip

    resolve_nodes = visible_nodes(repository.endpoints_by_ids)


@strawberry.type(description="One HTTP request of a delivery, and what came back.")
class WebhookAttemptType:
    number: int = strawberry.field(description="1 for a delivery's first attempt.")
    attempted_at: datetime
    url: str
    request_headers: strawberry.scalars.JSON = strawberry.field(
        description="The headers sent: webhook-id, webhook-timestamp, webhook-signature, ..."
    )
    response_status: int | None
    response_body: str = strawberry.field(description="The first 1,024 bytes of the answer.")
    latency_ms: int
    succeeded: bool
    error_class: str | None = strawberry.field(
        description="TIMEOUT, CONNECT_ERROR, TLS_ERROR, NETWORK_ERROR, HTTP_STATUS, REDIRECT, "
        "TARGET_NOT_ALLOWED, TARGET_UNRESOLVABLE, INVALID_URL or SEND_FAILED; null on success."
    )
    error: str | None

    @classmethod
    def from_model(cls, a: WebhookAttempt) -> WebhookAttemptType:
        return cls(
            number=a.number, attempted_at=a.attempted_at, url=a.url,
            request_headers=a.request_headers,  # type: ignore[arg-type]
            response_status=a.response_status,
            response_body=a.response_body, latency_ms=a.latency_ms, succeeded=a.succeeded,
            error_class=a.error_class, error=a.error,
        )  # fmt: skip


def _attempts(ctx: Context) -> DataLoader[uuid.UUID, list[WebhookAttempt]]:
    return list_loader(
        ctx, "webhooks.attempts", lambda ids: repository.attempts_of(ctx.session, ctx.caller, ids)
    )


@strawberry.type(
    name="WebhookDelivery",
    description="One message for one endpoint: the first delivery of an event's message, or "
    "a replay (sequence 1, 2, ...), which carries the same webhook-id and body.",
)
class WebhookDeliveryType(relay.Node):
    id: relay.NodeID[str]
    endpoint_id: strawberry.ID
    event_id: str = strawberry.field(description="The outbox event it comes from (a UUID).")
    message_id: str = strawberry.field(
        description="The webhook-id header: the same on every retry and replay."
    )
    sequence: int
    event_type: str
    status: DeliveryStatus
    attempt_count: int
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    occurred_at: datetime
    created_at: datetime
    body: str = strawberry.field(description="The JSON body sent (and signed) on each attempt.")

    @strawberry.field(description="Its attempts, oldest first.")
    async def attempts(self, info: Info[Context, None]) -> list[WebhookAttemptType]:
        found = await _attempts(info.context).load(uuid.UUID(str(self.id)))
        return [WebhookAttemptType.from_model(a) for a in found]

    @classmethod
    def from_model(cls, d: WebhookDelivery) -> WebhookDeliveryType:
        return cls(
            id=str(d.id), endpoint_id=global_id("WebhookEndpoint", d.endpoint_id),
            event_id=str(d.event_id), message_id=str(d.message_id), sequence=d.sequence,
            event_type=d.event_type, status=d.status, attempt_count=d.attempts,
            next_attempt_at=d.next_attempt_at, delivered_at=d.delivered_at,
            occurred_at=d.occurred_at, created_at=d.created_at, body=d.body,
        )  # fmt: skip

    resolve_nodes = visible_nodes(repository.deliveries_by_ids)
