"""The events webhooks records in the outbox (``infra.events.Event``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Self

from infra.events import Event

WEBHOOK_ENDPOINT_DISABLED = "WebhookEndpointDisabled"


@dataclass(frozen=True)
class WebhookEndpointDisabled(Event):
    """The delivery worker disabled an endpoint after persistent failure: its vendor's
    admins are to be told (notifications may e-mail them; the audit log and the endpoint's
    status already say so)."""

    type: ClassVar[str] = WEBHOOK_ENDPOINT_DISABLED
    endpoint_id: uuid.UUID
    url: str
    failing_since: datetime
    disabled_at: datetime
    last_error_class: str | None

    @classmethod
    def parse(cls, payload: dict[str, Any]) -> Self:
        return cls(
            endpoint_id=uuid.UUID(payload["endpoint_id"]),
            url=payload["url"],
            failing_since=datetime.fromisoformat(payload["failing_since"]),
            disabled_at=datetime.fromisoformat(payload["disabled_at"]),
            last_error_class=payload.get("last_error_class"),
        )
