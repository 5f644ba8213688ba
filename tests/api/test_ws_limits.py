"""Websocket limits on both protocols, against a real uvicorn server: the document checks
(also for the leaderboard fast path), operations per connection, message size and
connections per principal, each refused with a code."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
import websockets
from starlette.applications import Starlette

from api.app import create_app
from api.settings import Settings
from infra.clock import OffsetClock
from infra.db import Database
from partners.roles import Role
from tests.factories import Tenant, create_contest, gid
from tests.support import GQL, eventually, live_server

pytestmark = pytest.mark.slow

PROTOCOLS = ["graphql-transport-ws", "graphql-ws"]


def board(selection: str) -> str:
    return "subscription($id: ID!) { leaderboardChanged(contestId: $id) { " + selection + " } }"


async def connect(address: str, protocol: str, token: str) -> websockets.ClientConnection:
    ws = await websockets.connect(
        f"ws://{address}/graphql",
        subprotocols=[protocol],  # type: ignore[list-item]
        max_size=None,
    )
    await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": token}}))
    assert (await receive(ws))["type"] == "connection_ack"
    return ws


async def receive(ws: websockets.ClientConnection) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if message.get("type") not in ("ka", "ping", "pong"):
            return message


async def start(
    ws: websockets.ClientConnection, protocol: str, op_id: str, query: str, **payload: Any
) -> None:
    kind = "subscribe" if protocol == "graphql-transport-ws" else "start"
    body = {"query": query, **payload}
    await ws.send(json.dumps({"id": op_id, "type": kind, "payload": body}))


async def refusal(ws: websockets.ClientConnection, op_id: str) -> list[str | None]:
    """The codes of the `error` message for this operation (either protocol's shape)."""
    message = await receive(ws)
    assert message["type"] == "error", message
    assert message["id"] == op_id
    errors = message["payload"]
    errors = errors if isinstance(errors, list) else [errors]
    return [(e.get("extensions") or {}).get("code") for e in errors]


async def closed_with(ws: websockets.ClientConnection) -> int | None:
    try:
        while True:
            await asyncio.wait_for(ws.recv(), 10)
    except websockets.ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_the_leaderboard_feed_applies_the_document_limits(
    app: Starlette, gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, protocol: str
) -> None:
    contest = await create_contest(db, clock, tenant)
    token = gql.token(tenant.user(Role.PARTNER_REP, 1))
    variables = {"id": gid(contest)}
    too_many_aliases = board(" ".join(f"r{i}: rows {{ rank }}" for i in range(21)))
    too_many_tokens = board("version " + "status " * 2_000)
    two_operations = board("version") + " subscription B { __typename }"
    async with live_server(app) as address:
        ws = await connect(address, protocol, token)
        await start(ws, protocol, "1", too_many_aliases, variables=variables)
        assert await refusal(ws, "1") == ["TOO_MANY_ALIASES"]
        await start(ws, protocol, "2", too_many_tokens, variables=variables)
        assert await refusal(ws, "2") == ["TOO_MANY_TOKENS"]
        await start(ws, protocol, "3", "#" + "x" * 40_000 + "\n" + board("version"))
        assert await refusal(ws, "3") == ["DOCUMENT_TOO_LARGE"]
        await start(ws, protocol, "3", two_operations, variables=variables)
        assert await refusal(ws, "3") == ["OPERATION_NAME_REQUIRED"]
        for name in ("Nope", ""):  # an empty name names no operation either
            await start(
                ws, protocol, "3", board("version"), variables=variables, operationName=name
            )
            assert await refusal(ws, "3") == ["OPERATION_NOT_FOUND"]
        await start(ws, protocol, "4", board("version noSuchField"), variables=variables)
        assert await refusal(ws, "4") == ["GRAPHQL_VALIDATION_FAILED"]
        await start(ws, protocol, "4", board("version"), variables=variables)
        message = await receive(ws)
        # The same connection still serves a document within the limits.
        assert message["payload"]["data"]["leaderboardChanged"]["version"] >= 0, message
        await ws.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_too_many_operations_on_one_connection_is_a_coded_error(
    app: Starlette, gql: GQL, tenant: Tenant, settings: Settings, protocol: str
) -> None:
    token = gql.token(tenant.user(Role.PARTNER_REP))
    limit = settings.limits.ws_max_subscriptions
    query = "subscription { saleClaimStateChanged { id } }"
    async with live_server(app) as address:
        ws = await connect(address, protocol, token)
        for n in range(limit + 1):
            await start(ws, protocol, str(n), query)
        assert await refusal(ws, str(limit)) == ["TOO_MANY_OPERATIONS"]
        await ws.close()


@pytest.fixture
async def small_ws_app(settings: Settings, clock: OffsetClock) -> AsyncIterator[Starlette]:
    limits = replace(settings.limits, ws_max_message_bytes=4096, ws_max_connections_per_principal=2)
    app = create_app(settings.with_overrides(limits=limits), clock=clock)
    async with app.router.lifespan_context(app):
        yield app


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_message_over_the_size_limit_closes_with_1009(
    small_ws_app: Starlette, gql: GQL, tenant: Tenant, protocol: str
) -> None:
    token = gql.token(tenant.user(Role.PARTNER_REP))
    async with live_server(small_ws_app) as address:
        ws = await connect(address, protocol, token)
        await start(ws, protocol, "1", "subscription { __typename }" + " " * 5000)
        assert await closed_with(ws) == 1009


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_connections_per_principal_are_limited(
    small_ws_app: Starlette, gql: GQL, tenant: Tenant, protocol: str
) -> None:
    rep = gql.token(tenant.user(Role.PARTNER_REP))
    async with live_server(small_ws_app) as address:
        first = await connect(address, protocol, rep)
        second = await connect(address, protocol, rep)
        ws = await websockets.connect(
            f"ws://{address}/graphql",
            subprotocols=[protocol],  # type: ignore[list-item]
        )
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": rep}}))
        if protocol == "graphql-ws":  # the legacy protocol says why before closing
            message = await receive(ws)
            assert message["type"] == "connection_error"
            assert message["payload"]["code"] == "TOO_MANY_CONNECTIONS"
        assert await closed_with(ws) == 4429
        # Another principal is not affected.
        other = await connect(address, protocol, gql.token(tenant.user(Role.PARTNER_ADMIN)))
        # A closed connection frees its place.
        await first.close()

        async def admitted() -> bool:
            try:
                again = await connect(address, protocol, rep)
            except (AssertionError, websockets.ConnectionClosed):
                return False
            await again.close()
            return True

        await eventually(admitted)
        for ws_ in (second, other):
            await ws_.close()
