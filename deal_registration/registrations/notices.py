"""Live status-change notices: recorded in the outbox with the change, published after
commit on the vendor's and the partner's deal channels. A notice carries ids and statuses
only; subscribers re-read the registration through their own visibility rules. A moved
protection end (no status change) is recorded here too, for its own consumers."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from deal_registration.events import DealProtectionChanged, DealStatusChanged
from infra.clock import Clock
from infra.outbox import BatchHandler, OutboxEvent, record_event
from infra.pubsub import Hub


def vendor_channel(hub: Hub, vendor_id: uuid.UUID) -> str:
    return hub.channel("deal", vendor_id)


def partner_channel(hub: Hub, vendor_id: uuid.UUID, partner_id: uuid.UUID) -> str:
    return hub.channel("deal", vendor_id, partner_id)


async def record_status_change(
    session: AsyncSession,
    clock: Clock,
    *,
    vendor_id: uuid.UUID,
    partner_id: uuid.UUID,
    registration_id: uuid.UUID,
    from_status: str | None,
    to_status: str,
    at: datetime,
) -> None:
    changed = DealStatusChanged(
        registration_id=registration_id,
        partner_id=partner_id,
        from_status=from_status,
        to_status=to_status,
        at=at,
    )
    await record_event(
        session,
        clock,
        vendor_id=vendor_id,
        type=changed.type,
        aggregate_id=registration_id,
        payload=changed.to_payload(),
        occurred_at=at,
    )


async def record_protection_change(
    session: AsyncSession, clock: Clock, *, vendor_id: uuid.UUID, changed: DealProtectionChanged
) -> None:
    await record_event(
        session, clock, vendor_id=vendor_id, type=changed.type,
        aggregate_id=changed.registration_id, payload=changed.to_payload(),
        occurred_at=changed.at,
    )  # fmt: skip


def publisher(hub: Hub) -> BatchHandler:
    async def publish(events: list[OutboxEvent]) -> None:
        # A batch handler only so that these events join the dispatcher's runs (an event
        # with a per-event handler is dispatched alone); each is still published, in order.
        for event in events:
            # The event id lets subscribers tell a re-published notice (a re-run) once.
            notice = {**event.payload, "event_id": str(event.id)}
            message = json.dumps(notice, separators=(",", ":"))
            partner_id = uuid.UUID(event.payload["partner_id"])
            await hub.publish(vendor_channel(hub, event.vendor_id), message)
            await hub.publish(partner_channel(hub, event.vendor_id, partner_id), message)

    return publish
