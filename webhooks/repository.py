"""Which webhook rows a caller may see: its own vendor's, for the roles of the policy
table; deleted endpoints never (their deliveries stay in the log)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import false
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from infra.ranges import check_order
from partners.roles import Principal
from webhooks.errors import WebhookErrorCode
from webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from webhooks.policy import WEBHOOKS, WebhookOp


def readable_endpoints(principal: Principal) -> SelectOfScalar[WebhookEndpoint]:
    if not WEBHOOKS.allows(principal, WebhookOp.ENDPOINTS_READ):
        return select(WebhookEndpoint).where(false())
    return select(WebhookEndpoint).where(
        WebhookEndpoint.vendor_id == principal.vendor_id,
        col(WebhookEndpoint.deleted_at).is_(None),
    )


def readable_deliveries(principal: Principal) -> SelectOfScalar[WebhookDelivery]:
    if not WEBHOOKS.allows(principal, WebhookOp.DELIVERIES_READ):
        return select(WebhookDelivery).where(false())
    return select(WebhookDelivery).where(WebhookDelivery.vendor_id == principal.vendor_id)


async def endpoints_by_ids(
    session: AsyncSession, principal: Principal, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, WebhookEndpoint]:
    rows = await session.exec(readable_endpoints(principal).where(col(WebhookEndpoint.id).in_(ids)))
    return {e.id: e for e in rows}


async def deliveries_by_ids(
    session: AsyncSession, principal: Principal, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, WebhookDelivery]:
    rows = await session.exec(
        readable_deliveries(principal).where(col(WebhookDelivery.id).in_(ids))
    )
    return {d.id: d for d in rows}


async def attempts_of(
    session: AsyncSession, principal: Principal, delivery_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[WebhookAttempt]]:
    """The attempts of readable deliveries, oldest first."""
    if not WEBHOOKS.allows(principal, WebhookOp.DELIVERIES_READ):
        return {}
    rows = await session.exec(
        select(WebhookAttempt)
        .where(
            WebhookAttempt.vendor_id == principal.vendor_id,
            col(WebhookAttempt.delivery_id).in_(delivery_ids),
        )
        .order_by(col(WebhookAttempt.delivery_id), col(WebhookAttempt.number))
    )
    found: dict[uuid.UUID, list[WebhookAttempt]] = {i: [] for i in delivery_ids}
    for attempt in rows:
        found[attempt.delivery_id].append(attempt)
    return found


def deliveries_matching(
    principal: Principal,
    *,
    endpoint_id: uuid.UUID | None = None,
    event_id: str | None = None,
    status: DeliveryStatus | None = None,
    occurred_from: datetime | None = None,
    occurred_to: datetime | None = None,
) -> SelectOfScalar[WebhookDelivery]:
    """The delivery log's filters (an event id that is not a UUID matches nothing; an
    ``occurred_to`` at or before ``occurred_from`` is an ``INVALID_RANGE`` DomainError)."""
    check_order(
        WebhookErrorCode.INVALID_RANGE, occurred_from, occurred_to,
        names=("occurredFrom", "occurredTo"), field="occurred_to",
    )  # fmt: skip
    stmt = readable_deliveries(principal)
    if endpoint_id is not None:
        stmt = stmt.where(WebhookDelivery.endpoint_id == endpoint_id)
    if event_id is not None:
        try:
            stmt = stmt.where(WebhookDelivery.event_id == uuid.UUID(event_id))
        except ValueError:
            stmt = stmt.where(false())
    if status is not None:
        stmt = stmt.where(WebhookDelivery.status == status)
    if occurred_from is not None:
        stmt = stmt.where(col(WebhookDelivery.occurred_at) >= occurred_from)
    if occurred_to is not None:
        stmt = stmt.where(col(WebhookDelivery.occurred_at) < occurred_to)
    return stmt
