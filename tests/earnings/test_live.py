"""`earningsChanged` over a real websocket (graphql-transport-ws) on a real server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.applications import Starlette
from websockets.asyncio.client import ClientConnection, connect

from earnings import payouts
from infra.clock import OffsetClock
from infra.db import Database
from partners.models import User
from partners.roles import Role
from schema.context import Services
from tests.earnings import scenarios as es
from tests.factories import Tenant, dispatch, gid
from tests.support import GQL, live_server

pytestmark = pytest.mark.slow
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@asynccontextmanager
async def subscribed(
    app: Starlette, gql: GQL, user: User, query: str, variables: dict[str, Any] | None = None
) -> AsyncIterator[ClientConnection]:
    async with (
        live_server(app) as host,
        connect(f"ws://{host}/graphql", subprotocols=["graphql-transport-ws"]) as ws,
    ):
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": gql.token(user)}})
        )
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(
            json.dumps(
                {"id": "1", "type": "subscribe",
                 "payload": {"query": query, "variables": variables or {}}}
            )
        )  # fmt: skip
        yield ws


async def next_payload(ws: ClientConnection) -> dict[str, Any]:
    message = json.loads(await ws.recv())
    assert message["type"] in ("next", "error"), message
    payload: dict[str, Any] = message["payload"]
    return payload


@pytest.fixture
async def running(db: Database, clock: OffsetClock, tenant: Tenant) -> Tenant:
    clock.freeze(NOW)
    await es.make_program(db, clock, tenant, es.worked_rules(NOW - timedelta(days=1)))
    return tenant


async def test_partner_admin_gets_a_new_summary_when_the_ledger_changes(
    app: Starlette, gql: GQL, running: Tenant, db: Database, clock: OffsetClock,
    services: Services,
) -> None:  # fmt: skip
    query = "subscription { earningsChanged { earned { amountMinor } explanations { kind } } }"
    async with subscribed(app, gql, running.user(Role.PARTNER_ADMIN), query) as ws:
        first = await next_payload(ws)
        assert first["data"]["earningsChanged"]["earned"] == {"amountMinor": 0}
        await es.sale(db, clock, running, 500_000, partner_index=1)  # another partner's
        await es.sale(db, clock, running, 100_000)  # 8% = 80.00
        await dispatch(services)
        update = await next_payload(ws)
        assert update["data"]["earningsChanged"]["earned"] == {"amountMinor": 8_000}
        await es.sale(db, clock, running, 200_000)
        await dispatch(services)
        update = await next_payload(ws)
        assert update["data"]["earningsChanged"]["earned"] == {"amountMinor": 24_000}
        # A payout decision touches it too: March's statement is held (no tax form).
        clock.freeze(datetime(2026, 4, 2, tzinfo=UTC))
        async with db.transaction() as session:
            await payouts.generate_statements(
                session, running.principal(Role.FINANCE), clock, month=NOW,
                signals=services.claim_signals,
            )  # fmt: skip
        await dispatch(services)
        update = await next_payload(ws)
        assert [e["kind"] for e in update["data"]["earningsChanged"]["explanations"]] == [
            "EARNINGS_FELL", "HOLD", "NEXT_TIER",
        ]  # fmt: skip


async def test_partner_subscription_never_carries_vendor_internals(
    app: Starlette, gql: GQL, running: Tenant
) -> None:
    query = "subscription { earningsChanged { earned { amountMinor } margin { amountMinor } } }"
    async with subscribed(app, gql, running.user(Role.PARTNER_REP), query) as ws:
        payload = await next_payload(ws)
    assert payload["data"]["earningsChanged"]["margin"] is None
    assert [e["extensions"]["code"] for e in payload["errors"]] == ["FORBIDDEN"]


async def test_subscribing_to_another_partner_is_answered_as_not_found(
    app: Starlette, gql: GQL, running: Tenant
) -> None:

    other = gid("Partner", running.partners[1].id)
    query = "subscription($p: ID) { earningsChanged(partnerId: $p) { earned { amountMinor } } }"
    async with subscribed(app, gql, running.user(Role.PARTNER_ADMIN), query, {"p": other}) as ws:
        payload = await next_payload(ws)
    errors = payload if isinstance(payload, list) else payload.get("errors", [])
    assert [e["extensions"]["code"] for e in errors] == ["NOT_FOUND"]
