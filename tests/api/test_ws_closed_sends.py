"""An operation that ends as its socket closes has no one left to tell: its last send fails
on the closed socket, and the operation ends quietly on both protocols. Before, on the
legacy protocol the operation's task had already taken itself off the handler's list, so
nothing retrieved the send's exception and asyncio logged "Task exception was never
retrieved" at ERROR; on graphql-transport-ws strawberry logged "Exception in worker task".
The fuzz campaign (test_ws_fuzz) found the legacy case. Here the client closes while the
server is still handling its previous message, and the operation ends in that window."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.applications import Starlette

from api.graphql import LegacyGraphQLWSHandler, TransportWSHandler
from api.ws_lean import App
from partners.roles import Role
from tests.factories import Tenant
from tests.support import GQL, eventually, live_server, ws_client

pytestmark = pytest.mark.slow

NOTIFICATIONS = "subscription { notificationReceived { id title } }"


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_an_operation_ending_as_its_socket_closes_ends_quietly(
    app: Starlette,
    gql: GQL,
    tenant: Tenant,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    protocol: str,
) -> None:
    assert isinstance(app, App)
    assert app.view is not None
    ends = asyncio.Event()  # the operation's stream ends
    ended = asyncio.Event()  # ... and its task is done
    handling = asyncio.Event()  # the server is handling the held message
    release = asyncio.Event()  # ... and may go on

    async def stream(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        async def results() -> AsyncIterator[Any]:
            try:
                await ends.wait()
                return
                yield
            finally:
                ended.set()

        return results()

    monkeypatch.setattr(app.view.schema, "stream", stream)
    monkeypatch.setattr(app.view.schema, "subscribe", stream)
    for cls in (TransportWSHandler, LegacyGraphQLWSHandler):
        original = cls.handle_message

        async def held(self: Any, message: Any, original: Any = original) -> None:
            if message.get("id") == "hold":
                handling.set()
                await release.wait()
            await original(self, message)

        monkeypatch.setattr(cls, "handle_message", held)

    token = gql.token(tenant.user(Role.VENDOR_ADMIN))
    caplog.set_level(logging.ERROR)
    async with live_server(app) as address:
        async with ws_client(address, token, protocol) as client:
            await client.subscribe(NOTIFICATIONS, {})
            complete = "complete" if protocol == "graphql-transport-ws" else "stop"
            await client.ws.send(json.dumps({"id": "hold", "type": complete}))
            await asyncio.wait_for(handling.wait(), 5)
        # closed (the close handshake done) while the server handles the held message
        ends.set()
        await asyncio.wait_for(ended.wait(), 5)
        await asyncio.sleep(0.05)  # (its last send)
        release.set()

        async def released() -> bool:
            return len(app.view.sockets) == 0  # type: ignore[union-attr]

        await eventually(released)
    gc.collect()  # (a task that failed unobserved logs when collected)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [f"{r.name}: {r.getMessage()} {r.exc_info!r}" for r in errors]
