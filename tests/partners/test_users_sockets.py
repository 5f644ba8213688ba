"""A user's role change or deactivation through GraphQL closes that user's open websockets
at once (4403, via api.ws_sessions), on both protocols, and leaves everyone else's open."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from starlette.applications import Starlette

from partners.roles import Role
from tests.factories import Tenant, gid
from tests.support import GQL, answers, close_frame, live_server, ws_client

pytestmark = pytest.mark.slow

PROTOCOLS = ["graphql-transport-ws", "graphql-ws"]
ROLE = """mutation($id: ID!) { userRoleChange(input: {id: $id, role: PARTNER_ADMIN}) {
  userErrors { code } } }"""
DEACTIVATE = "mutation($id: ID!) { userDeactivate(input: {id: $id}) { userErrors { code } } }"


@pytest.fixture
async def server(app: Starlette) -> AsyncIterator[str]:
    async with live_server(app) as address:
        yield address


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    ("mutation", "field", "reason"),
    [(ROLE, "userRoleChange", "PRINCIPAL_CHANGED"), (DEACTIVATE, "userDeactivate",
                                                     "USER_DEACTIVATED")],
)  # fmt: skip
async def test_the_changed_users_sockets_close_and_others_stay_open(
    server: str, gql: GQL, tenant: Tenant, protocol: str, mutation: str, field: str, reason: str
) -> None:
    rep, colleague = tenant.user(Role.PARTNER_REP, 0), tenant.user(Role.PARTNER_REP, 1)
    async with (
        ws_client(server, gql.token(rep), protocol) as doomed,
        ws_client(server, gql.token(colleague), protocol) as other,
    ):
        result = await gql.data(mutation, {"id": gid(rep)}, as_user=tenant.user(Role.PARTNER_ADMIN))
        assert result == {field: {"userErrors": []}}
        assert await close_frame(doomed.ws) == (4403, reason)
        assert await answers(other)
