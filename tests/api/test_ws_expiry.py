"""Websocket sessions in time: a token is honoured over websockets exactly as long as over
HTTP (until exp + CHANNELBOARD_JWT_LEEWAY_SECONDS), and a socket of either protocol that
never sends connection_init is closed with 4408."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
import websockets
from starlette.applications import Starlette

from api.auth import issue_token
from api.settings import Settings
from infra.clock import OffsetClock
from partners.roles import Role
from tests.factories import Tenant
from tests.support import GQL, answers, close_code, close_frame, live_server, ws_client

pytestmark = pytest.mark.slow

ME = "{ me { role } }"


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_a_token_past_exp_but_within_the_leeway_serves_until_exp_plus_leeway(
    app: Starlette, gql: GQL, tenant: Tenant, settings: Settings, clock: OffsetClock,
    protocol: str,
) -> None:  # fmt: skip
    leeway = settings.jwt.leeway_seconds
    assert leeway >= 5
    user = tenant.user(Role.PARTNER_REP)
    # exp was (leeway - 2) s ago: HTTP accepts it, and so must a websocket, for 2 s more.
    expired_at = clock.now() - timedelta(seconds=leeway - 2)
    token = issue_token(
        settings.jwt, user, ttl=timedelta(hours=1), now=expired_at - timedelta(hours=1)
    )
    assert (await gql(ME, token=token)) == {"data": {"me": {"role": "PARTNER_REP"}}}
    async with live_server(app) as address, ws_client(address, token, protocol) as client:
        assert await answers(client)  # was closed 4403 right after connection_ack
        assert await close_frame(client.ws) == (4403, "TOKEN_EXPIRED")  # at exp + leeway


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_sockets_that_never_send_connection_init_are_closed_with_4408(
    app: Starlette, protocol: str
) -> None:
    async with live_server(app) as address:
        idle = [
            await websockets.connect(
                f"ws://{address}/graphql",
                subprotocols=[protocol],  # type: ignore[list-item]
            )
            for _ in range(5)
        ]
        codes = await asyncio.gather(*(close_code(ws) for ws in idle))
        assert codes == [4408] * 5


async def test_a_legacy_socket_that_sends_connection_init_in_time_stays_open(
    app: Starlette, gql: GQL, tenant: Tenant, settings: Settings
) -> None:
    token = gql.token(tenant.user(Role.PARTNER_REP))
    async with live_server(app) as address, ws_client(address, token, "graphql-ws") as client:
        # Past the init timeout: the timer was cancelled by connection_init.
        await asyncio.sleep(settings.limits.ws_init_timeout_seconds + 0.5)
        assert await answers(client)
