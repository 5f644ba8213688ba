"""A task cancelled in the middle of a statement of its transaction (a clock job when its
app stops) leaves nothing behind: its transaction rolls back, and the next writer gets the
write lock (SQLite) or the row (PostgreSQL) at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlmodel import select

from infra.clock import OffsetClock
from infra.db import Database, is_sqlite
from partners.models import Vendor
from partners.service import create_vendor
from tests.support import HeldStatement, eventually

ADVISORY_KEY = 7_346_112


@pytest.fixture
async def job_db(migrated: str) -> AsyncIterator[Database]:
    """A second engine on the test database: another process's, whose job is cut off."""
    database = Database(migrated)
    yield database
    await database.dispose()


async def test_a_transaction_cancelled_mid_statement_leaves_no_lock(
    db: Database, job_db: Database, clock: OffsetClock
) -> None:
    async def job() -> None:
        async with job_db.transaction() as session:
            await create_vendor(session, clock, name="Cut off", slug="cut-off")
            if is_sqlite(job_db.url):  # a query with rows to read, held in its first step
                await session.execute(text("SELECT slug FROM vendor -- held"))
            else:  # waits for the test's advisory lock
                await session.execute(text(f"SELECT pg_advisory_xact_lock({ADVISORY_KEY})"))

    if is_sqlite(job_db.url):
        held = HeldStatement(job_db.engine, "-- held")
        task = asyncio.create_task(job())
        await held.entered()
        task.cancel()
        held.release()
        # (its traceback, kept here until the end, keeps the cut-off query's cursor)
        with pytest.raises(asyncio.CancelledError) as cut_off:
            await task
    else:

        async def job_waits() -> bool:  # a fresh snapshot of the server's activity each time
            async with db.session() as watcher:
                waiting = await watcher.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'advisory'"
                        " AND datname = current_database()"
                    )
                )
                return bool(waiting)

        async with db.session() as holder:
            await holder.execute(text(f"SELECT pg_advisory_lock({ADVISORY_KEY})"))
            task = asyncio.create_task(job())
            try:
                await eventually(job_waits, within=30)
            finally:
                task.cancel()
            with pytest.raises(asyncio.CancelledError) as cut_off:
                await task
            await holder.execute(text(f"SELECT pg_advisory_unlock({ADVISORY_KEY})"))

    async with db.transaction() as session:  # SQLite: BEGIN IMMEDIATE, PostgreSQL: a row
        if not is_sqlite(db.url):
            await session.execute(text("SET LOCAL lock_timeout = '10s'"))
        await create_vendor(session, clock, name="Next", slug="cut-off")
    async with db.session() as session:
        assert list(await session.exec(select(Vendor.name).where(Vendor.slug == "cut-off"))) == [
            "Next"
        ]
    del cut_off


async def test_a_transaction_ends_before_its_task_even_when_cancelled_again(
    db: Database, job_db: Database, clock: OffsetClock
) -> None:
    """A second cancellation during the rollback (as a cancel scope cancels every await)
    neither cuts the rollback off nor lets the task end before its connection is back."""
    inside = asyncio.Event()

    async def job() -> None:
        async with job_db.transaction() as session:
            await create_vendor(session, clock, name="Cut off", slug="cut-off-twice")
            inside.set()
            try:
                await asyncio.Event().wait()
            finally:
                task.cancel()  # once more: the rollback's turn

    task = asyncio.create_task(job())
    await inside.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert job_db.engine.pool.checkedout() == 0
    async with db.transaction() as session:
        await create_vendor(session, clock, name="Next", slug="cut-off-twice")
