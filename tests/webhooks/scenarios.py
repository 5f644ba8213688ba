"""What the webhook tests share: an endpoint registered over GraphQL for a receiver, and
reads of the delivery rows."""

from __future__ import annotations

from typing import Any

from sqlmodel import col, select

from infra.db import Database
from partners.roles import Role
from tests.factories import Tenant
from tests.support import GQL
from tests.webhooks.queries import CREATE
from tests.webhooks.receiver import Receiver
from webhooks.models import WebhookDelivery

ALL_TYPES = [
    "sale_claim.approved", "sale_claim.rejected", "sale_claim.reversed",
    "deal_registration.status_changed", "deal_registration.protection_changed",
    "payout_statement.status_changed",
    "earnings_entry.created", "contest.finished", "partner.applied", "partner.enrolled",
    "rule.fired",
]  # fmt: skip


async def register(
    gql: GQL, tenant: Tenant, receiver: Receiver, types: list[str] | None = None
) -> tuple[str, str]:
    """Register the receiver's URL; the receiver learns the secret. Returns (id, secret)."""
    created = (
        await gql.data(
            CREATE,
            {"input": {"url": receiver.url, "eventTypes": types or ALL_TYPES}},
            as_user=tenant.user(Role.VENDOR_ADMIN),
        )
    )["webhookEndpointCreate"]
    assert created["userErrors"] == []
    receiver.secrets.append(created["secret"])
    return created["endpoint"]["id"], created["secret"]


async def deliveries(db: Database) -> list[WebhookDelivery]:
    async with db.session() as session:
        rows = await session.exec(
            select(WebhookDelivery).order_by(
                col(WebhookDelivery.created_at), col(WebhookDelivery.id)
            )
        )
        return list(rows)


def data_of(received: Any) -> dict[str, Any]:
    payload: dict[str, Any] = received.payload
    return payload
