"""The legacy graphql-ws protocol follows graphql-transport-ws's rules for messages that
are not the protocol's, as both paths must: before, strawberry closed a binary frame with
1002, skipped text that was not JSON and types the protocol does not define in silence (a
client never learnt why nothing happened), and ran the authentication again on a second
connection_init, after which the socket's running operations served whoever it named."""

from __future__ import annotations

import json

import pytest
from starlette.applications import Starlette

from partners.roles import Role
from tests.factories import Tenant
from tests.support import GQL, close_code, live_server, ws_client

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"\x00binary", 4400),
        ("not json", 4400),
        ('{"type": "ping"}', 4400),  # graphql-transport-ws's, not this protocol's
        ('{"type": "subscribe", "id": "1", "payload": {"query": "{ __typename }"}}', 4400),
        ('{"type": "connection_init", "payload": {}}', 4429),
    ],
)
async def test_a_message_outside_the_legacy_protocol_closes_with_its_code(
    app: Starlette, gql: GQL, tenant: Tenant, frame: str | bytes, code: int
) -> None:
    token = gql.token(tenant.user(Role.VENDOR_ADMIN))
    async with live_server(app) as address, ws_client(address, token, "graphql-ws") as client:
        await client.ws.send(frame)
        assert await close_code(client.ws) == code


async def test_a_second_connection_init_does_not_change_who_the_socket_serves(
    app: Starlette, gql: GQL, tenant: Tenant, other_tenant: Tenant
) -> None:
    token = gql.token(tenant.user(Role.VENDOR_ADMIN))
    other = gql.token(other_tenant.user(Role.VENDOR_ADMIN))
    async with live_server(app) as address, ws_client(address, token, "graphql-ws") as client:
        init = {"type": "connection_init", "payload": {"Authorization": other}}
        await client.ws.send(json.dumps(init))
        assert await close_code(client.ws) == 4429
