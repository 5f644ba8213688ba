"""A close whose reason names what the client sent (a reused operation id, an unknown
message type) still closes with its code: a close frame's reason holds at most 123 bytes
(RFC 6455), and a longer one made uvicorn raise "control frame too long" as the handler
closed, so the client saw the connection dropped without a close frame (1006) and the
server logged "Exception in ASGI application". The fuzz campaign (test_ws_fuzz, seed 7)
found it: a 5000-character id reused while its operation was still registered (4409)."""

from __future__ import annotations

import json

import pytest
from starlette.applications import Starlette

from partners.roles import Role
from tests.factories import Tenant
from tests.support import GQL, close_frame, live_server, ws_client

pytestmark = pytest.mark.slow

NOTIFICATIONS = "subscription { notificationReceived { id title } }"
HUGE = "x" * 5000


async def test_a_reused_huge_id_closes_with_4409(app: Starlette, gql: GQL, tenant: Tenant) -> None:
    token = gql.token(tenant.user(Role.VENDOR_ADMIN))
    subscribe = {"id": HUGE, "type": "subscribe", "payload": {"query": NOTIFICATIONS}}
    async with live_server(app) as address, ws_client(address, token) as client:
        await client.ws.send(json.dumps(subscribe))
        await client.ws.send(json.dumps(subscribe))
        frame = await close_frame(client.ws)
        assert frame is not None, "dropped without a close frame"
        code, reason = frame
        assert code == 4409
        assert reason.startswith("Subscriber for xxx")
        assert len(reason.encode()) <= 123


async def test_an_unknown_legacy_type_of_many_bytes_closes_with_4400(
    app: Starlette, gql: GQL, tenant: Tenant
) -> None:
    token = gql.token(tenant.user(Role.VENDOR_ADMIN))
    async with live_server(app) as address, ws_client(address, token, "graphql-ws") as client:
        await client.ws.send(json.dumps({"type": "é" * 200}))
        frame = await close_frame(client.ws)
        assert frame is not None, "dropped without a close frame"
        code, reason = frame
        assert code == 4400
        assert reason.startswith("Unknown message type: éé")
        assert len(reason.encode()) <= 123
