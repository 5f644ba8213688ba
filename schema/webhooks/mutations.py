"""Webhook endpoint administration and replay: vendor admins only (webhooks/policy.py)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Self

import strawberry
from strawberry import Info

from schema.context import Context
from schema.errors import UserError
from schema.mutations import Payload, Write, run
from schema.permissions import allowed
from schema.relay import global_id
from schema.webhooks.inputs import (
    WebhookEndpointCreateInput,
    WebhookEndpointIdInput,
    WebhookEndpointSecretRotateInput,
    WebhookEndpointUpdateInput,
    WebhookReplayInput,
)
from schema.webhooks.types import WebhookDeliveryType, WebhookEndpointType
from webhooks import deliveries, endpoints
from webhooks.errors import WebhookErrorCode
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.policy import WEBHOOKS, WebhookOp


@strawberry.type
class WebhookError(UserError):
    code: WebhookErrorCode


@strawberry.type
class WebhookEndpointPayload(Payload[WebhookEndpoint], errors=WebhookError):
    endpoint: WebhookEndpointType | None = None
    user_errors: list[WebhookError] = strawberry.field(default_factory=list)

    @classmethod
    def of(cls, result: WebhookEndpoint, write: Write) -> Self:
        return cls(endpoint=WebhookEndpointType.from_model(result))


@strawberry.type
class WebhookEndpointSecretPayload(Payload[endpoints.WithSecret], errors=WebhookError):
    endpoint: WebhookEndpointType | None = None
    secret: str | None = strawberry.field(
        default=None,
        description="The signing secret (whsec_...), shown this once: store it now.",
    )
    user_errors: list[WebhookError] = strawberry.field(default_factory=list)

    @classmethod
    def of(cls, result: endpoints.WithSecret, write: Write) -> Self:
        return cls(endpoint=WebhookEndpointType.from_model(result.endpoint), secret=result.secret)


@strawberry.type
class WebhookEndpointDeletePayload(Payload[uuid.UUID], errors=WebhookError):
    deleted_id: strawberry.ID | None = None
    user_errors: list[WebhookError] = strawberry.field(default_factory=list)

    @classmethod
    def of(cls, result: uuid.UUID, write: Write) -> Self:
        return cls(deleted_id=global_id("WebhookEndpoint", result))


@strawberry.type
class WebhookReplayPayload(Payload[list[WebhookDelivery]], errors=WebhookError):
    deliveries: list[WebhookDeliveryType] | None = strawberry.field(
        default=None, description="The new deliveries (none when nothing matched)."
    )
    user_errors: list[WebhookError] = strawberry.field(default_factory=list)

    @classmethod
    def of(cls, result: list[WebhookDelivery], write: Write) -> Self:
        return cls(deliveries=[WebhookDeliveryType.from_model(d) for d in result])


@strawberry.type
class WebhooksMutation:
    @strawberry.mutation(
        permission_classes=[allowed(WEBHOOKS, WebhookOp.ENDPOINT_CREATE)],
        description="Register an endpoint; the payload's secret is shown only this once.",
    )
    async def webhook_endpoint_create(
        self, info: Info[Context, None], input: WebhookEndpointCreateInput
    ) -> WebhookEndpointSecretPayload:
        return await run(info, WebhookEndpointSecretPayload, lambda m: endpoints.create_endpoint(
            m.session, m.principal, m.clock, policy=m.services.webhooks.policy, url=input.url,
            event_types=input.event_types, description=input.description,
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(WEBHOOKS, WebhookOp.ENDPOINT_UPDATE)],
        description="Change an endpoint's URL, event types or description.",
    )
    async def webhook_endpoint_update(
        self, info: Info[Context, None], input: WebhookEndpointUpdateInput
    ) -> WebhookEndpointPayload:
        return await run(info, WebhookEndpointPayload, lambda m: endpoints.update_endpoint(
            m.session, m.principal, m.clock, policy=m.services.webhooks.policy,
            endpoint_id=m.id(input.id, "WebhookEndpoint"), url=input.url,
            event_types=input.event_types, description=input.description,
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(WEBHOOKS, WebhookOp.ENDPOINT_DISABLE)],
        description="Stop sending to an endpoint (pending deliveries wait until it is enabled).",
    )
    async def webhook_endpoint_disable(
        self, info: Info[Context, None], input: WebhookEndpointIdInput
    ) -> WebhookEndpointPayload:
        return await run(info, WebhookEndpointPayload, lambda m: endpoints.disable_endpoint(
            m.session, m.principal, m.clock, endpoint_id=m.id(input.id, "WebhookEndpoint"),
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(WEBHOOKS, WebhookOp.ENDPOINT_ENABLE)],
        description="Send to an endpoint again; its pending deliveries are due at once.",
    )
    async def webhook_endpoint_enable(
        self, info: Info[Context, None], input: WebhookEndpointIdInput
    ) -> WebhookEndpointPayload:
        return await run(info, WebhookEndpointPayload, lambda m: endpoints.enable_endpoint(
            m.session, m.principal, m.clock, policy=m.services.webhooks.policy,
            endpoint_id=m.id(input.id, "WebhookEndpoint"),
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(WEBHOOKS, WebhookOp.ENDPOINT_DELETE)],
        description="Delete an endpoint: nothing more is sent; its delivery log stays.",
    )
    async def webhook_endpoint_delete(
        self, info: Info[Context, None], input: WebhookEndpointIdInput
    ) -> WebhookEndpointDeletePayload:
        return await run(info, WebhookEndpointDeletePayload, lambda m: endpoints.delete_endpoint(
            m.session, m.principal, m.clock, endpoint_id=m.id(input.id, "WebhookEndpoint"),
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(WEBHOOKS, WebhookOp.SECRET_ROTATE)],
        description="A new signing secret (shown this once); the previous one keeps signing "
        "beside it for overlapSeconds.",
    )
    async def webhook_endpoint_secret_rotate(
        self, info: Info[Context, None], input: WebhookEndpointSecretRotateInput
    ) -> WebhookEndpointSecretPayload:
        return await run(info, WebhookEndpointSecretPayload, lambda m: endpoints.rotate_secret(
            m.session, m.principal, m.clock, endpoint_id=m.id(input.id, "WebhookEndpoint"),
            overlap=timedelta(seconds=input.overlap_seconds),
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(WEBHOOKS, WebhookOp.REPLAY)],
        description="Send messages again to an endpoint, by outbox event id or time range.",
    )
    async def webhook_replay(
        self, info: Info[Context, None], input: WebhookReplayInput
    ) -> WebhookReplayPayload:
        async def replay(m: Write) -> list[WebhookDelivery]:
            event_id = None
            if input.event_id is not None:
                try:
                    event_id = uuid.UUID(input.event_id)
                except ValueError:
                    event_id = uuid.UUID(int=0)  # answered like an unknown event
            return await deliveries.replay(
                m.session, m.principal, m.clock,
                endpoint_id=m.id(input.endpoint_id, "WebhookEndpoint"), event_id=event_id,
                since=input.from_, until=input.to,
            )  # fmt: skip

        return await run(info, WebhookReplayPayload, replay)
