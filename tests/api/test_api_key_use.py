"""API-key authentication only reads: a login succeeds while another writer holds the
database (SQLite's write lock, a PostgreSQL row lock on the key), over HTTP and both
websocket protocols, and the key's lastUsedAt is still kept to the minute (written in the
background and at shutdown)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy import update
from starlette.applications import Starlette

from api.app import create_app
from api.settings import Settings
from infra.clock import OffsetClock
from infra.db import Database
from partners.models import ApiKey
from partners.roles import Role
from tests.factories import Tenant
from tests.support import GQL, live_server

ME = "{ me { role } }"
KEYS = "{ apiKeys { edges { node { name lastUsedAt } } } }"


async def create_key(gql: GQL, tenant: Tenant, name: str = "ERP sync") -> str:
    created = await gql.data(
        """mutation($name: String!) { apiKeyCreate(input: {name: $name, role: VENDOR_ADMIN}) {
             secret userErrors { code } } }""",
        {"name": name},
        as_user=tenant.user(Role.VENDOR_ADMIN),
    )
    secret: str = created["apiKeyCreate"]["secret"]
    return secret


@asynccontextmanager
async def another_writer(db: Database) -> AsyncIterator[None]:
    """Another connection in the middle of a write transaction that touched every API key:
    on SQLite it holds the database's write lock (BEGIN IMMEDIATE), on PostgreSQL the keys'
    row locks, until the block ends."""
    other = Database(db.url)
    try:
        async with other.transaction() as session:
            table = ApiKey.__table__  # type: ignore[attr-defined]
            await session.execute(update(table).values(name=table.c.name))
            yield
            await session.rollback()
    finally:
        await other.dispose()


async def last_used(gql: GQL, tenant: Tenant) -> dict[str, str | None]:
    data = await gql.data(KEYS, as_user=tenant.user(Role.VENDOR_ADMIN))
    return {e["node"]["name"]: e["node"]["lastUsedAt"] for e in data["apiKeys"]["edges"]}


async def test_an_api_key_login_over_http_does_not_wait_for_another_writer(
    gql: GQL, tenant: Tenant, db: Database
) -> None:
    secret = await create_key(gql, tenant)  # never used: its first use was a write
    # A safety net for the bug (the login waited out the 30 s busy timeout and failed with
    # "database is locked"; on PostgreSQL it waited for the row lock), not a measurement.
    async with another_writer(db), asyncio.timeout(20):
        assert await gql(ME, token=secret) == {"data": {"me": {"role": "VENDOR_ADMIN"}}}


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_an_api_key_login_over_websockets_does_not_wait_for_another_writer(
    app: Starlette, gql: GQL, tenant: Tenant, db: Database, protocol: str
) -> None:
    secret = await create_key(gql, tenant)
    async with another_writer(db), live_server(app) as address:
        async with (
            asyncio.timeout(20),  # a safety net, as above
            websockets.connect(
                f"ws://{address}/graphql",
                subprotocols=[protocol],  # type: ignore[list-item]
            ) as ws,
        ):
            init = {"Authorization": f"Bearer {secret}"}
            await ws.send(json.dumps({"type": "connection_init", "payload": init}))
            assert json.loads(await ws.recv()) == {"type": "connection_ack"}


def _parse(value: str | None) -> datetime:
    assert value is not None
    return datetime.fromisoformat(value)


async def test_last_used_at_is_kept_to_the_minute(
    app: Starlette, gql: GQL, tenant: Tenant, clock: OffsetClock
) -> None:
    secret = await create_key(gql, tenant, "used")
    await create_key(gql, tenant, "unused")
    assert "errors" not in await gql(ME, token=secret)
    await app.state.authenticator.key_usage.flush()  # what the background task does
    first = await last_used(gql, tenant)
    assert first["unused"] is None
    assert abs(clock.now() - _parse(first["used"])) < timedelta(minutes=1)

    clock.advance(timedelta(minutes=5))
    assert "errors" not in await gql(ME, token=secret)  # from the principal cache
    await app.state.authenticator.key_usage.flush()
    later = _parse((await last_used(gql, tenant))["used"])
    assert abs(clock.now() - later) < timedelta(minutes=1)


async def test_uses_noted_before_shutdown_are_written(
    settings: Settings, clock: OffsetClock, gql: GQL, tenant: Tenant
) -> None:
    secret = await create_key(gql, tenant)
    other = create_app(settings, clock=clock)  # a second process, stopped after one request
    async with other.router.lifespan_context(other):
        transport = httpx.ASGITransport(app=other)
        async with httpx.AsyncClient(transport=transport, base_url="http://o") as client:
            headers: dict[str, Any] = {"authorization": f"Bearer {secret}"}
            response = await client.post("/graphql", json={"query": ME}, headers=headers)
            assert response.json() == {"data": {"me": {"role": "VENDOR_ADMIN"}}}
    used = _parse((await last_used(gql, tenant))["ERP sync"])
    assert abs(clock.now() - used) < timedelta(minutes=1)


async def test_a_failed_write_is_kept_for_the_next_flush(
    app: Starlette, gql: GQL, tenant: Tenant, db: Database
) -> None:
    secret = await create_key(gql, tenant)
    assert "errors" not in await gql(ME, token=secret)
    usage = app.state.authenticator.key_usage
    broken = Database("postgresql+asyncpg://nobody@127.0.0.1:1/none")  # nothing listens
    usage.db, working = broken, usage.db
    try:
        await usage.flush()
    finally:
        usage.db = working
        await broken.dispose()
    assert (await last_used(gql, tenant))["ERP sync"] is None
    await usage.flush()
    assert (await last_used(gql, tenant))["ERP sync"] is not None
