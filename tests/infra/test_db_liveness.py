"""A pooled PostgreSQL connection whose server side died is found out and replaced: at
checkout when it has been idle longer than the bypass window (``PING_AFTER_IDLE_SECONDS``),
else by its first statement failing as a disconnect, after which the pool starts afresh.
The window is a parameter: these tests set it to 0 (always checked) or an hour (never)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from infra.db import Database, is_sqlite
from infra.outages import is_unavailable


@pytest.fixture
async def admin(database_url: str) -> AsyncIterator[Database]:
    if is_sqlite(database_url):
        pytest.skip("a server-side connection to lose needs PostgreSQL")
    admin = Database(database_url)
    yield admin
    await admin.dispose()


async def _backend(db: Database) -> int:
    async with db.session() as session:
        pid: int = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        return pid


async def _kill(admin: Database, pid: int) -> None:
    async with admin.session() as session:
        await session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


async def test_an_idle_connection_is_checked_and_replaced(
    admin: Database, database_url: str
) -> None:
    db = Database(database_url, ping_after_idle=0)
    try:
        dead = await _backend(db)
        await _kill(admin, dead)
        assert await _backend(db) != dead  # no error: the check at checkout replaced it
    finally:
        await db.dispose()


async def test_within_the_window_the_first_statement_finds_it_and_the_pool_starts_afresh(
    admin: Database, database_url: str
) -> None:
    db = Database(database_url, ping_after_idle=3600)
    try:
        dead = await _backend(db)
        await _kill(admin, dead)
        with pytest.raises(DBAPIError) as failed:
            await _backend(db)
        assert failed.value.connection_invalidated
        assert is_unavailable(failed.value)  # SERVICE_UNAVAILABLE, not a bug (test_outages)
        assert await _backend(db) != dead
    finally:
        await db.dispose()
