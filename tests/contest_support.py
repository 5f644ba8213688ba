"""Factories for contest tests: contests through the service, source events straight into
the outbox (as the sale-claim and deal services will record them), and dispatch."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import websockets

from deal_registration.events import DealWon, Line, SaleApproved, SaleReversed
from infra.clock import Clock
from infra.db import Database
from infra.outbox import OutboxEvent, record_event
from leaderboards import service
from leaderboards.models import Contest
from partners.roles import Principal, Role
from schema.context import Services
from tests.support import Tenant


def admin_of(tenant: Tenant) -> Principal:
    user = tenant.user(Role.VENDOR_ADMIN)
    return Principal(vendor_id=tenant.vendor.id, role=Role.VENDOR_ADMIN, user_id=user.id)


async def make_contest(
    db: Database, clock: Clock, tenant: Tenant, *, publish: bool = True, **settings: Any
) -> Contest:
    now = clock.now()
    values: dict[str, Any] = {
        "name": "Q4 push",
        "starts_at": now - timedelta(hours=1),
        "ends_at": now + timedelta(days=30),
        **settings,
    }
    async with db.transaction() as session:
        contest = await service.create_contest(
            session, admin_of(tenant), clock, settings=service.ContestSettings(**values)
        )
        if publish:
            contest = await service.publish_contest(
                session, admin_of(tenant), clock, contest_id=contest.id
            )
    return contest


async def approve_sale(
    db: Database,
    clock: Clock,
    tenant: Tenant,
    *,
    partner: int = 0,
    amount: int = 100_00,
    units: int = 1,
    sku: str = "NW-ROUTER-X1",
    at: datetime | None = None,
    rep: uuid.UUID | None = None,
    currency: str = "USD",
    region: str = "EMEA",
) -> OutboxEvent:
    when = at or clock.now()
    sale = SaleApproved(
        claim_id=uuid.uuid4(), partner_id=tenant.partners[partner].id, rep_user_id=rep,
        region=region, currency=currency, amount_minor=amount,
        lines=[Line(sku=sku, units=units, amount_minor=amount)], sold_at=when, approved_at=when,
    )  # fmt: skip
    async with db.transaction() as session:
        return await record_event(
            session, clock, vendor_id=tenant.vendor.id, type=SaleApproved.type,
            aggregate_id=sale.claim_id, payload=sale.to_payload(), occurred_at=when,
        )  # fmt: skip


async def reverse_sale(
    db: Database, clock: Clock, tenant: Tenant, approved: OutboxEvent, *, at: datetime | None = None
) -> OutboxEvent:
    sale = SaleApproved.parse(approved.payload)
    when = at or clock.now()
    reversal = SaleReversed(
        claim_id=sale.claim_id, partner_id=sale.partner_id, rep_user_id=sale.rep_user_id,
        region=sale.region, currency=sale.currency, amount_minor=sale.amount_minor,
        reverses_event_id=approved.id, reason="refund", lines=sale.lines,
        sold_at=sale.sold_at, reversed_at=when,
    )  # fmt: skip
    async with db.transaction() as session:
        return await record_event(
            session, clock, vendor_id=tenant.vendor.id, type=SaleReversed.type,
            aggregate_id=sale.claim_id, payload=reversal.to_payload(), occurred_at=when,
        )  # fmt: skip


async def win_deal(
    db: Database, clock: Clock, tenant: Tenant, *, partner: int = 0, amount: int = 500_00
) -> OutboxEvent:
    when = clock.now()
    deal = DealWon(
        registration_id=uuid.uuid4(), partner_id=tenant.partners[partner].id, rep_user_id=None,
        region="EMEA", currency="USD", amount_minor=amount, won_at=when,
    )  # fmt: skip
    async with db.transaction() as session:
        return await record_event(
            session, clock, vendor_id=tenant.vendor.id, type=DealWon.type,
            aggregate_id=deal.registration_id, payload=deal.to_payload(), occurred_at=when,
        )  # fmt: skip


async def dispatch(services: Services) -> None:
    await services.outbox.dispatch_pending()


class WSClient:
    """A real websocket GraphQL client (graphql-transport-ws, or the legacy graphql-ws)."""

    def __init__(self, ws: Any, protocol: str) -> None:
        self.ws = ws
        self.protocol = protocol
        self._ids = 0

    async def subscribe(self, query: str, variables: dict[str, Any]) -> str:
        self._ids += 1
        op_id = str(self._ids)
        kind = "subscribe" if self.protocol == "graphql-transport-ws" else "start"
        await self.ws.send(
            json.dumps(
                {"id": op_id, "type": kind, "payload": {"query": query, "variables": variables}}
            )
        )
        return op_id

    async def receive(self) -> dict[str, Any]:
        """The next protocol message (keep-alives skipped); a hang fails after 15 s."""
        while True:
            message: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), 15))
            if message.get("type") in ("ka", "ping", "pong"):
                continue
            return message

    async def data(self) -> dict[str, Any]:
        """The next `next`/`data` message's data (fails on anything else)."""
        message = await self.receive()
        assert message["type"] in ("next", "data"), message
        assert "errors" not in message["payload"], message
        result: dict[str, Any] = message["payload"]["data"]
        return result


@asynccontextmanager
async def ws_client(
    address: str, token: str | None, protocol: str = "graphql-transport-ws"
) -> AsyncIterator[WSClient]:
    async with websockets.connect(
        f"ws://{address}/graphql", subprotocols=[protocol], compression=None, max_size=None
    ) as ws:
        init = "connection_init"
        await ws.send(
            json.dumps({"type": init, "payload": {"Authorization": token} if token else {}})
        )
        client = WSClient(ws, protocol)
        ack = await client.receive()
        assert ack["type"] == "connection_ack", ack
        yield client
