"""Revocation reaches open sockets: revoking an API key, deactivating a user, suspending a
partner or changing a user's role closes that principal's open websockets with 4403, on
both protocols and in every process, and leaves everyone else's open."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlmodel import col, update
from starlette.applications import Starlette

from api.settings import Settings
from deal_registration.registrations import notices
from infra.clock import OffsetClock
from infra.db import Database
from partners.models import Partner, PartnerStatus, User
from partners.roles import Role
from schema.context import Services
from tests.deal_registration.registrations.scenarios import submit
from tests.factories import Tenant, add_products, create_contest, gid
from tests.processes import api_process
from tests.support import GQL, answers, close_code, close_frame, listening, live_server, ws_client

pytestmark = pytest.mark.slow

PROTOCOLS = ["graphql-transport-ws", "graphql-ws"]
DEALS = "subscription { dealRegistrationStatusChanged { registrationId customerName status } }"
BOARD = """subscription($id: ID!) {
  leaderboardChanged(contestId: $id, first: 5) { version rows { score } } }"""
REVOKE = "mutation($id: ID!) { apiKeyRevoke(input: {id: $id}) { userErrors { code } } }"


@pytest.fixture
async def server(app: Starlette) -> AsyncIterator[str]:
    async with live_server(app) as address:
        yield address


async def create_key(gql: GQL, tenant: Tenant, name: str) -> tuple[str, str]:
    """(id, secret) of a new VENDOR_ADMIN key."""
    created = await gql.data(
        """mutation($name: String!) { apiKeyCreate(input: {name: $name, role: VENDOR_ADMIN}) {
             apiKey { id } secret } }""",
        {"name": name},
        as_user=tenant.user(Role.VENDOR_ADMIN),
    )
    result = created["apiKeyCreate"]
    return result["apiKey"]["id"], result["secret"]


async def set_user(db: Database, user: User, **values: Any) -> None:
    async with db.transaction() as session:
        await session.execute(update(User).where(col(User.id) == user.id).values(**values))


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_revoked_api_keys_deal_feed_is_closed(
    server: str, gql: GQL, services: Services, db: Database, clock: OffsetClock,
    tenant: Tenant, protocol: str,
) -> None:  # fmt: skip
    async with db.transaction() as session:
        await add_products(session, clock, tenant)
    revoked_id, revoked = await create_key(gql, tenant, "revoked")
    _, kept = await create_key(gql, tenant, "kept")
    async with (
        ws_client(server, revoked, protocol) as doomed,
        ws_client(server, kept, protocol) as other,
    ):
        await doomed.subscribe(DEALS, {})
        await other.subscribe(DEALS, {})
        await listening(services, notices.vendor_channel(services.hub, tenant.vendor.id))
        admin = tenant.user(Role.VENDOR_ADMIN)
        assert (await gql.data(REVOKE, {"id": revoked_id}, as_user=admin)) == {
            "apiKeyRevoke": {"userErrors": []}
        }
        assert await close_frame(doomed.ws) == (4403, "INVALID_API_KEY")
        # The other key's feed goes on: it hears the next registration, customer and all.
        registration = await submit(gql, tenant.user(Role.PARTNER_REP), clock)
        change = (await other.data())["dealRegistrationStatusChanged"]
        assert (change["registrationId"], change["status"]) == (registration, "SUBMITTED")
        assert change["customerName"] == "Acme Corp."


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_deactivated_users_leaderboard_subscription_is_closed(
    server: str, gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, protocol: str
) -> None:
    contest = await create_contest(db, clock, tenant)
    rep, colleague = tenant.user(Role.PARTNER_REP), tenant.user(Role.PARTNER_ADMIN)
    async with (
        ws_client(server, gql.token(rep), protocol) as doomed,
        ws_client(server, gql.token(colleague), protocol) as other,
    ):
        for client in (doomed, other):
            await client.subscribe(BOARD, {"id": gid(contest)})
            assert "leaderboardChanged" in await client.data()
        await set_user(db, rep, active=False)
        assert await close_frame(doomed.ws) == (4403, "USER_DEACTIVATED")
        assert await answers(other)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_role_change_closes_the_users_sockets(
    server: str, gql: GQL, db: Database, tenant: Tenant, protocol: str
) -> None:
    admin = tenant.user(Role.PARTNER_ADMIN)
    async with ws_client(server, gql.token(admin), protocol) as client:
        await set_user(db, admin, role=Role.PARTNER_REP)
        assert await close_frame(client.ws) == (4403, "PRINCIPAL_CHANGED")


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_suspended_partner_closes_its_users_sockets(
    server: str, gql: GQL, db: Database, tenant: Tenant, protocol: str
) -> None:
    rep, other_partners_rep = tenant.user(Role.PARTNER_REP, 0), tenant.user(Role.PARTNER_REP, 1)
    async with (
        ws_client(server, gql.token(rep), protocol) as doomed,
        ws_client(server, gql.token(other_partners_rep), protocol) as other,
    ):
        async with db.transaction() as session:
            await session.execute(
                update(Partner)
                .where(col(Partner.id) == rep.partner_id)
                .values(status=PartnerStatus.SUSPENDED)
            )
        assert await close_frame(doomed.ws) == (4403, "PARTNER_INACTIVE")
        assert await answers(other)


async def test_a_change_made_in_another_process_reaches_the_socket(
    server: str, gql: GQL, settings: Settings, tenant: Tenant
) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    remote_key_id, remote_key = await create_key(gql, tenant, "socket on the other process")
    local_key_id, local_key = await create_key(gql, tenant, "socket on this process")
    async with (
        api_process(settings) as remote,
        ws_client(remote, remote_key) as on_remote,
        ws_client(server, local_key) as on_local,
    ):
        # Revoked here: the other process hears of it over Redis and closes its socket.
        await gql.data(REVOKE, {"id": remote_key_id}, as_user=admin)
        assert await close_code(on_remote.ws) == 4403
        assert await answers(on_local)
        # Revoked through the other process: this process closes its socket.
        async with httpx.AsyncClient() as client:
            response = await client.post(
                f"http://{remote}/graphql",
                json={"query": REVOKE, "variables": {"id": local_key_id}},
                headers={"authorization": f"Bearer {gql.token(admin)}"},
            )
        assert response.json() == {"data": {"apiKeyRevoke": {"userErrors": []}}}
        assert await close_code(on_local.ws) == 4403


async def test_a_change_missed_while_pubsub_was_down_is_caught_up(
    server: str, gql: GQL, db: Database, services: Services, tenant: Tenant
) -> None:
    if os.environ.get("CHANNELBOARD_TEST_REDIS_URL"):
        pytest.skip("kills every pub/sub client of the Redis: only on the run's own one")
    rep = tenant.user(Role.PARTNER_REP)
    async with ws_client(server, gql.token(rep)) as client:
        # A writer nobody hears (no Redis to tell), then a lost pub/sub connection: once
        # this process subscribes again it re-checks, as a notice may have been missed.
        unheard = Database(db.url)
        try:
            await set_user(unheard, rep, active=False)
        finally:
            await unheard.dispose()
        assert await answers(client)  # nothing told this process yet
        await services.redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        assert await close_code(client.ws) == 4403
