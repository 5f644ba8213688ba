"""The helpers that count what a block of a test sends the database and Redis
(tests.support.sql_statements, redis_commands) count the block's own work: a request it
makes, a task it starts; not the app's background loops (the outbox dispatcher's poll
each second, the clock jobs), which run whenever they are due. Before, a count taken
while one of them ran failed the test at random (a statement of the dispatcher's poll in
a block asserted to send none; another xdist worker's EVALSHA in the shared Redis's INFO
commandstats)."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from infra.db import Database
from partners.roles import Role
from schema.context import Services
from tests.factories import Tenant
from tests.support import GQL, redis_commands, sql_statements


async def test_sql_statements_counts_the_block_s_own_statements_only(
    db: Database, gql: GQL, tenant: Tenant
) -> None:
    go = asyncio.Event()

    async def background() -> None:  # started before the block, as the app's loops are
        await go.wait()
        async with db.session() as session:
            await session.execute(text("SELECT 'background'"))

    loop = asyncio.create_task(background())
    with sql_statements(db) as seen:
        async with db.session() as session:
            await session.execute(text("SELECT 'own'"))

        async def started_here() -> None:
            async with db.session() as session:
                await session.execute(text("SELECT 'started here'"))

        await asyncio.create_task(started_here())
        go.set()
        await loop
        # A request's statements (a token not seen yet: its user is read).
        assert "errors" not in await gql("{ me { role } }", as_user=tenant.user(Role.FINANCE))
    assert any("'own'" in s for s in seen), seen
    assert any("'started here'" in s for s in seen), seen
    assert any("FROM user_account" in s for s in seen), seen
    assert not any("'background'" in s for s in seen), seen


async def test_redis_commands_counts_the_block_s_own_commands_only(services: Services) -> None:
    go = asyncio.Event()
    key = services.keys("counted")

    async def background() -> None:
        await go.wait()
        await services.redis.get(services.keys("background"))

    loop = asyncio.create_task(background())
    with redis_commands() as sent:
        await services.redis.set(key, "1")
        async with services.redis.pipeline(transaction=False) as pipe:
            pipe.incr(key)
            pipe.expire(key, 60)
            await pipe.execute()
        go.set()
        await loop
    # (A connection the pool opens meanwhile sends its handshake too: CLIENT SETINFO.)
    counted = [c for c in sent if c in {"SET", "INCRBY", "EXPIRE", "GET"}]
    assert counted == ["SET", "INCRBY", "EXPIRE"], sent
