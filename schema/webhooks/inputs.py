from __future__ import annotations

from datetime import datetime

import strawberry


@strawberry.input
class WebhookEndpointCreateInput:
    url: str = strawberry.field(
        description="An http(s) URL on a public address (private, loopback and link-local "
        "targets are refused unless the installation allows them)."
    )
    event_types: list[str] = strawberry.field(description="Names from webhookEventTypes.")
    description: str = ""


@strawberry.input(description="Fields left out (null) stay as they are.")
class WebhookEndpointUpdateInput:
    id: strawberry.ID
    url: str | None = None
    event_types: list[str] | None = None
    description: str | None = None


@strawberry.input
class WebhookEndpointIdInput:
    id: strawberry.ID


@strawberry.input
class WebhookEndpointSecretRotateInput:
    id: strawberry.ID
    overlap_seconds: int = strawberry.field(
        default=86_400,
        description="How long the previous secret keeps signing beside the new one (0 to "
        "604800, 7 days): deploy the new secret to your receiver within it.",
    )


@strawberry.input(
    description="Send again to one endpoint: the messages of one outbox event (eventId), or "
    "of every event that occurred in [from, to) (at most 31 days). Only event types the "
    "endpoint subscribes to; each message keeps its webhook-id."
)
class WebhookReplayInput:
    endpoint_id: strawberry.ID
    event_id: str | None = None
    from_: datetime | None = strawberry.field(default=None, name="from")
    to: datetime | None = None
