"""A websocket whose credential cannot be checked (the database is unreachable) is closed
with a code saying so (1013, try again later), as HTTP answers 503: never dropped without a
close frame (1006), and never mistaken for bad credentials (4403)."""

from __future__ import annotations

import json

import httpx
import pytest
import websockets

from api.app import create_app
from api.settings import Settings
from infra.clock import OffsetClock
from tests.support import close_code, live_server, make_token

pytestmark = pytest.mark.slow

UNREACHABLE = "postgresql+asyncpg://nobody@127.0.0.1:1/none"  # nothing listens on port 1


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_authentication_without_a_database_closes_with_1013(
    settings: Settings, clock: OffsetClock, protocol: str
) -> None:
    app = create_app(settings.with_overrides(database_url=UNREACHABLE), clock=clock)
    token = make_token(None)  # well signed: only the user lookup needs the database
    async with app.router.lifespan_context(app), live_server(app) as address:
        async with httpx.AsyncClient() as client:
            response = await client.post(
                f"http://{address}/graphql",
                json={"query": "{ me { role } }"},
                headers={"authorization": f"Bearer {token}"},
            )
        assert response.status_code == 503
        async with websockets.connect(
            f"ws://{address}/graphql",
            subprotocols=[protocol],  # type: ignore[list-item]
        ) as ws:
            init = {"Authorization": f"Bearer {token}"}
            await ws.send(json.dumps({"type": "connection_init", "payload": init}))
            assert await close_code(ws) == 1013
