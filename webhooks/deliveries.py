"""Delivery rows: made from committed outbox events (the outbox handler, never a request),
and by replays. A row per message and subscribed endpoint of the event's own vendor."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from infra.clock import Clock
from infra.db import Database, for_change
from infra.errors import DomainError
from infra.ids import new_id
from infra.outbox import OutboxEvent
from infra.ranges import check_order
from partners.audit_log import AuditEntity, log_change
from partners.roles import Principal
from webhooks.errors import WebhookErrorCode
from webhooks.event_types import MAPPERS, Message, messages_of
from webhooks.models import DeliveryStatus, EndpointStatus, WebhookDelivery, WebhookEndpoint
from webhooks.policy import WEBHOOKS, WebhookOp
from webhooks.repository import readable_endpoints

SOURCE_TYPES = tuple(MAPPERS)
MAX_REPLAY_RANGE = timedelta(days=31)
MAX_REPLAY_MESSAGES = 10_000


def body_of(message: Message, occurred_at: datetime) -> str:
    """The JSON body every attempt sends (and signs): ``{type, timestamp, data}``."""
    return json.dumps(
        {"type": message.type, "timestamp": occurred_at.isoformat(), "data": message.data},
        separators=(",", ":"),
        ensure_ascii=False,
    )


def _row(
    endpoint: WebhookEndpoint,
    event: OutboxEvent,
    message: Message,
    now: datetime,
    sequence: int = 0,
) -> dict[str, Any]:
    return {
        "id": new_id(),
        "vendor_id": endpoint.vendor_id, "endpoint_id": endpoint.id, "event_id": event.id,
        "message_id": message.message_id, "sequence": sequence, "event_type": message.type,
        "body": body_of(message, event.occurred_at), "occurred_at": event.occurred_at,
        "created_at": now, "status": DeliveryStatus.PENDING, "attempts": 0,
        "next_attempt_at": now,
    }  # fmt: skip


async def _active_endpoints(
    session: AsyncSession, vendor_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, list[WebhookEndpoint]]:
    rows = await session.exec(
        select(WebhookEndpoint).where(
            col(WebhookEndpoint.vendor_id).in_(list(vendor_ids)),
            WebhookEndpoint.status == EndpointStatus.ACTIVE,
            col(WebhookEndpoint.deleted_at).is_(None),
        )
    )
    found: dict[uuid.UUID, list[WebhookEndpoint]] = defaultdict(list)
    for endpoint in rows:
        found[endpoint.vendor_id].append(endpoint)
    return found


async def create_for_events(db: Database, clock: Clock, events: list[OutboxEvent]) -> int:
    """The outbox handler: a delivery per message of each event and active endpoint of its
    vendor subscribed to the message's type. Idempotent: a re-run (after a crash between
    this commit and the outbox's mark) adds nothing that exists. Returns rows made."""
    async with db.transaction() as session:
        endpoints = await _active_endpoints(session, {e.vendor_id for e in events})
        if not endpoints:
            return 0
        now = clock.now()
        rows = []
        for event in events:
            subscribed = endpoints.get(event.vendor_id)
            if not subscribed:
                continue
            for message in messages_of(event):
                for endpoint in subscribed:
                    if message.type in endpoint.event_types:
                        rows.append(_row(endpoint, event, message, now))
        if not rows:
            return 0
        existing = await session.exec(
            select(WebhookDelivery.endpoint_id, WebhookDelivery.message_id).where(
                col(WebhookDelivery.event_id).in_({r["event_id"] for r in rows}),
                WebhookDelivery.sequence == 0,
            )
        )
        done = {(endpoint_id, message_id) for endpoint_id, message_id in existing}
        rows = [r for r in rows if (r["endpoint_id"], r["message_id"]) not in done]
        if rows:
            await session.execute(insert(WebhookDelivery), rows)
        return len(rows)


async def replay(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    endpoint_id: uuid.UUID,
    event_id: uuid.UUID | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[WebhookDelivery]:
    """Send again, to one endpoint, the messages of one outbox event, or of every event
    that occurred in [since, until): a new delivery each (attempt count from zero), with
    the same ``webhook-id`` and body as the first. Messages of event types the endpoint is
    subscribed to now; events the endpoint never received (before it existed, while it was
    disabled) are sent too, from the outbox."""
    WEBHOOKS.require(principal, WebhookOp.REPLAY)
    if event_id is None and since is None and until is None:
        raise DomainError(
            WebhookErrorCode.REPLAY_TARGET_REQUIRED, "Give an event id or a time range.", None
        )
    if event_id is not None and (since is not None or until is not None):
        raise DomainError(
            WebhookErrorCode.REPLAY_TARGET_AMBIGUOUS,
            "Give an event id or a time range, not both.",
            None,
        )
    now = clock.now()
    if event_id is None:
        if since is None or until is None:
            field = "from" if since is None else "to"
            raise DomainError(WebhookErrorCode.INVALID_RANGE, "Give both ends of the range.", field)
        check_order(WebhookErrorCode.INVALID_RANGE, since, until, names=("from", "to"))
        if since > now:
            raise DomainError(WebhookErrorCode.INVALID_RANGE, "The range is in the future.", "from")
        if until - since > MAX_REPLAY_RANGE:
            raise DomainError(
                WebhookErrorCode.RANGE_TOO_LONG, "Replay at most 31 days at a time.", "to"
            )
    # Locked (``for_change``): replays at once take turns for the next sequence number, and
    # a replay after a delete or a disable of the endpoint finds it gone or disabled.
    endpoint = (
        await session.exec(
            for_change(
                readable_endpoints(principal).where(WebhookEndpoint.id == endpoint_id),
                WebhookEndpoint,
            )
        )
    ).first()
    if endpoint is None:
        raise DomainError(WebhookErrorCode.NOT_FOUND, "No such webhook endpoint.", "endpoint_id")
    if endpoint.status is not EndpointStatus.ACTIVE:
        raise DomainError(
            WebhookErrorCode.ENDPOINT_DISABLED, "Enable the endpoint first.", "endpoint_id"
        )
    stmt = select(OutboxEvent).where(
        OutboxEvent.vendor_id == principal.vendor_id,
        col(OutboxEvent.type).in_(SOURCE_TYPES),
    )
    if event_id is not None:
        stmt = stmt.where(OutboxEvent.id == event_id)
    else:
        stmt = stmt.where(
            col(OutboxEvent.occurred_at) >= since, col(OutboxEvent.occurred_at) < until
        )
    events = list(
        await session.exec(stmt.order_by(col(OutboxEvent.id)).limit(MAX_REPLAY_MESSAGES + 1))
    )
    if event_id is not None and not events:
        raise DomainError(WebhookErrorCode.NOT_FOUND, "No such event.", "event_id")
    rows = [
        _row(endpoint, event, message, now)
        for event in events
        for message in messages_of(event)
        if message.type in endpoint.event_types
    ]
    if len(rows) > MAX_REPLAY_MESSAGES:
        raise DomainError(
            WebhookErrorCode.RANGE_TOO_LONG,
            f"More than {MAX_REPLAY_MESSAGES} messages; replay a shorter range.",
            "to",
        )
    await log_change(
        session, principal, clock, action="webhook_endpoint.replayed",
        entity_type=AuditEntity.WEBHOOK_ENDPOINT, entity_id=endpoint.id, before=None,
        after={"event_id": event_id, "from": since, "to": until, "messages": len(rows)},
    )  # fmt: skip
    if not rows:
        return []
    # Each replay of a message is its next sequence number (the first delivery is 0).
    last = await session.exec(
        select(WebhookDelivery.message_id, func.max(WebhookDelivery.sequence))
        .where(
            WebhookDelivery.endpoint_id == endpoint.id,
            col(WebhookDelivery.message_id).in_([r["message_id"] for r in rows]),
        )
        .group_by(col(WebhookDelivery.message_id))
    )
    sequences = {message_id: int(seq) for message_id, seq in last}
    made = []
    for row in rows:
        row["sequence"] = sequences.get(row["message_id"], -1) + 1
        delivery = WebhookDelivery(**row)
        session.add(delivery)
        made.append(delivery)
    await session.flush()
    return made
