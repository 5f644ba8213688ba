"""Which websocket subprotocol a handshake gets. A client offering both protocols (Python's
gql: WebsocketsTransport and AIOHTTPWebsocketsTransport send `graphql-ws,
graphql-transport-ws` by default and speak whichever the server picks) gets
graphql-transport-ws, which carries queries and mutations as well as subscriptions: with
the client's first choice it got the legacy protocol, which carries subscriptions only here,
so gql's default transport could run no query (its `fetch_schema_from_transport` neither)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets
from starlette.applications import Starlette

from partners.roles import Role
from tests.factories import Tenant
from tests.support import GQL, live_server

pytestmark = pytest.mark.slow

GQL_DEFAULT = ["graphql-ws", "graphql-transport-ws"]  # gql 4's order


async def handshake(address: str, offered: list[str], token: str) -> Any:
    ws = await websockets.connect(f"ws://{address}/graphql", subprotocols=offered)  # type: ignore[arg-type]
    await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": token}}))
    ack = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert ack["type"] == "connection_ack", ack
    return ws


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        (GQL_DEFAULT, "graphql-transport-ws"),
        (["graphql-transport-ws", "graphql-ws"], "graphql-transport-ws"),
        (["chat", "graphql-ws"], "graphql-ws"),  # the legacy protocol alone: still served
    ],
)
async def test_graphql_transport_ws_is_chosen_whenever_offered(
    app: Starlette, gql: GQL, tenant: Tenant, offered: list[str], chosen: str
) -> None:
    token = gql.token(tenant.user(Role.PARTNER_REP))
    async with live_server(app) as address:
        ws = await handshake(address, offered, token)
        assert ws.subprotocol == chosen
        await ws.close()


async def test_a_client_offering_both_protocols_runs_a_query(
    app: Starlette, gql: GQL, tenant: Tenant
) -> None:
    """What gql's default WebsocketsTransport does: offer both, speak the one chosen, run a
    query (before: `error` OPERATION_NOT_ALLOWED on the legacy protocol)."""
    token = gql.token(tenant.user(Role.PARTNER_REP))
    async with live_server(app) as address:
        ws = await handshake(address, GQL_DEFAULT, token)
        kind = "subscribe" if ws.subprotocol == "graphql-transport-ws" else "start"
        query = {"query": "query Me { me { role } }", "operationName": "Me"}
        await ws.send(json.dumps({"id": "1", "type": kind, "payload": query}))
        answer = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert answer["payload"] == {"data": {"me": {"role": "PARTNER_REP"}}}, answer
        complete = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert complete == {"id": "1", "type": "complete"}
        await ws.close()
