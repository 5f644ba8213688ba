"""A statement sent with a transaction's BEGIN (``infra.db.with_begin``, PostgreSQL through
asyncpg): it runs before the transaction's first statement, which reads what was committed
while it waited; a carried statement that fails fails the transaction and leaves its
connection clean; one whose transaction ran nothing goes with no other transaction."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from infra.db import Database, with_begin
from tests.factories import Tenant
from tests.support import eventually

LOCK = "SELECT pg_advisory_xact_lock(7001, 42)"
WAITING = text(
    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    " AND classid = 7001 AND objid = 42"
)
HELD_HERE = text(
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND classid = 7001 AND pid = pg_backend_pid()"
)


@pytest.fixture
async def own(db: Database) -> AsyncIterator[Database]:
    """A Database of its own, so its one connection is the one reused."""
    if not db.url.startswith("postgresql+asyncpg"):
        pytest.skip("a BEGIN that carries a statement is asyncpg's (PostgreSQL)")
    own = Database(db.url)
    try:
        yield own
    finally:
        await own.dispose()


async def waiter_pid(db: Database) -> int:
    async def found() -> int | None:
        async with db.session() as session:
            pid: int | None = await session.scalar(WAITING)
            return pid

    await eventually(found)
    pid = await found()
    assert pid is not None
    return pid


async def test_the_first_statement_reads_what_was_committed_while_the_carried_one_waited(
    db: Database, own: Database, tenant: Tenant
) -> None:
    async with db.transaction() as holder:
        await holder.execute(text(LOCK))
        await holder.execute(
            text("UPDATE vendor SET name = 'Renamed' WHERE id = :id"), {"id": tenant.vendor.id}
        )

        async def reader() -> tuple[str, int]:
            async with own.transaction() as session:
                assert await with_begin(session, LOCK)
                name = await session.scalar(
                    text("SELECT name FROM vendor WHERE id = :id"), {"id": tenant.vendor.id}
                )
                return str(name), int(await session.scalar(HELD_HERE) or 0)

        task = asyncio.create_task(reader())
        await waiter_pid(db)  # waits in its BEGIN's round trip, before its first statement
        assert not task.done()
    assert await task == ("Renamed", 1)


async def test_a_carried_statement_that_fails_fails_the_transaction_and_leaves_it_clean(
    db: Database, own: Database
) -> None:
    async with db.transaction() as holder:
        await holder.execute(text(LOCK))

        async def waiter() -> None:
            async with own.transaction() as session:
                assert await with_begin(session, LOCK)
                await session.execute(text("SELECT 1"))

        task = asyncio.create_task(waiter())
        pid = await waiter_pid(db)
        async with db.session() as session:
            await session.execute(text("SELECT pg_cancel_backend(:pid)"), {"pid": pid})
        with pytest.raises(DBAPIError, match="canceling statement"):
            await task
    # The same connection, outside any transaction: the next one begins and runs as usual.
    async with own.transaction() as session:
        assert await session.scalar(text("SELECT pg_backend_pid()")) == pid
        assert await session.scalar(HELD_HERE) == 0
        assert await with_begin(session, LOCK) is False  # begun already: the caller runs it
    async with own.transaction() as session:
        assert await with_begin(session, LOCK)
        assert await session.scalar(HELD_HERE) == 1


async def test_what_a_transaction_that_ran_nothing_carried_goes_with_no_other(
    own: Database,
) -> None:
    async with own.transaction() as session:
        assert await with_begin(session, LOCK)
    async with own.transaction() as session:
        assert await session.scalar(HELD_HERE) == 0
    async with own.session() as session:  # ended by a rollback, likewise
        await session.connection()
        assert await with_begin(session, LOCK)
        await session.rollback()
        assert await session.scalar(HELD_HERE) == 0


async def test_a_task_cancelled_while_its_carried_statement_waits_leaves_nothing_behind(
    db: Database, own: Database
) -> None:
    async with db.transaction() as holder:
        await holder.execute(text(LOCK))

        async def waiter() -> None:
            async with own.transaction() as session:
                assert await with_begin(session, LOCK)
                await session.execute(text("SELECT 1"))

        task = asyncio.create_task(waiter())
        await waiter_pid(db)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    async with db.session() as session:  # nobody holds or waits for the lock
        assert not await session.scalar(
            text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 7001")
        )
    async with own.transaction() as session:  # and the pool's connections work
        assert await with_begin(session, LOCK)
        assert await session.scalar(HELD_HERE) == 1
