"""Webhook tables: the endpoints a vendor registers, one delivery row per message and
endpoint (a replay adds another, with the same message id), and one attempt row per
HTTP request (the delivery log)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint
from sqlalchemy import Enum as SAEnum
from sqlmodel import Field, SQLModel

from infra.db import UTCDateTime
from infra.ids import new_id


def _enum(enum: type[StrEnum], name: str) -> SAEnum:
    return SAEnum(enum, name=name, native_enum=False, length=32, validate_strings=True)


class EndpointStatus(StrEnum):
    ACTIVE = "ACTIVE"
    DISABLED = "DISABLED"


class DisabledReason(StrEnum):
    MANUAL = "MANUAL"  # a vendor admin disabled it
    FAILING = "FAILING"  # every delivery failed for about a day: disabled by the worker


class DeliveryStatus(StrEnum):
    PENDING = "PENDING"  # due at next_attempt_at (failed attempts so far: attempts)
    DELIVERED = "DELIVERED"  # a 2xx answer
    FAILED = "FAILED"  # every retry failed (about a day), or the endpoint was deleted


class WebhookEndpoint(SQLModel, table=True):
    __tablename__ = "webhook_endpoint"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    url: str = Field(max_length=2000)
    description: str = Field(default="", max_length=500)
    event_types: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # Standard Webhooks secrets ("whsec_" + base64). Shown once, never read back through the
    # API; the previous one still signs until previous_secret_expires_at (rotation).
    secret: str = Field(max_length=100)
    previous_secret: str | None = Field(default=None, max_length=100)
    previous_secret_expires_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    status: EndpointStatus = Field(
        default=EndpointStatus.ACTIVE,
        sa_column=Column(_enum(EndpointStatus, "webhook_endpoint_status"), nullable=False),
    )
    disabled_reason: DisabledReason | None = Field(
        default=None, sa_column=Column(_enum(DisabledReason, "webhook_disabled_reason"))
    )
    disabled_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    # The first failed attempt since the last success: the endpoint is disabled when a
    # delivery gives up and nothing succeeded for DISABLE_AFTER since then.
    failing_since: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    # Deleted endpoints are kept (their delivery log refers to them) but answered like
    # missing ones; their secrets are wiped and their pending deliveries FAILED.
    deleted_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))


class WebhookDelivery(SQLModel, table=True):
    """One message for one endpoint. ``message_id`` is the ``webhook-id`` header: the same
    on every retry and replay of the message, for the receiver's de-duplication."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "message_id", "sequence"),
        Index("ix_webhook_delivery_due", "status", "next_attempt_at"),
        Index("ix_webhook_delivery_event", "vendor_id", "event_id"),
        Index("ix_webhook_delivery_occurred", "vendor_id", "occurred_at"),
        Index("ix_webhook_delivery_lease", "lease_token"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id")
    endpoint_id: uuid.UUID = Field(foreign_key="webhook_endpoint.id", index=True)
    event_id: uuid.UUID  # the outbox event it comes from
    message_id: uuid.UUID
    sequence: int = 0  # 0: the first delivery; 1, 2, ...: replays
    event_type: str = Field(max_length=64)
    # The exact body sent (and signed) on every attempt.
    body: str = Field(sa_column=Column(Text, nullable=False))
    occurred_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    status: DeliveryStatus = Field(
        default=DeliveryStatus.PENDING,
        sa_column=Column(_enum(DeliveryStatus, "webhook_delivery_status"), nullable=False),
    )
    attempts: int = 0
    next_attempt_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    delivered_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    # A worker's claim (real time, like the outbox lease): another worker may take the row
    # once it expires, so a worker that dies mid-request loses nothing.
    lease_token: uuid.UUID | None = None
    leased_until: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))


class WebhookAttempt(SQLModel, table=True):
    """One HTTP request of a delivery: what was sent and what came back (the delivery log).
    Never a driver's raw error text or a secret: an error class and a short message."""

    __tablename__ = "webhook_attempt"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id")
    delivery_id: uuid.UUID = Field(foreign_key="webhook_delivery.id", index=True)
    endpoint_id: uuid.UUID = Field(foreign_key="webhook_endpoint.id", index=True)
    number: int  # 1 for the first attempt of the delivery
    attempted_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    url: str = Field(max_length=2000)
    request_headers: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )
    response_status: int | None = None
    response_body: str = Field(default="", max_length=2000)
    latency_ms: int = 0
    succeeded: bool = False
    error_class: str | None = Field(default=None, max_length=32)
    error: str | None = Field(default=None, max_length=300)
