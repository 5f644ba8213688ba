"""Read-then-write transactions that start with ``begin_write`` wait for each other instead
of failing with "database is locked" on SQLite (and behave the same on PostgreSQL)."""

from __future__ import annotations

import asyncio

from sqlalchemy import func
from sqlmodel import select

from infra.clock import OffsetClock
from infra.db import Database, begin_write
from partners.models import Vendor
from partners.service import create_vendor


async def test_read_then_write_transactions_serialise(db: Database, clock: OffsetClock) -> None:
    first = db.new_session()
    await begin_write(first)
    await first.scalar(select(func.count()).select_from(Vendor))  # holds the write intent
    second_started = asyncio.Event()

    async def second() -> int:
        async with db.session() as session:
            second_started.set()
            await begin_write(session)  # waits for the first to commit (SQLite)
            seen = int(await session.scalar(select(func.count()).select_from(Vendor)) or 0)
            await create_vendor(session, clock, name="Second", slug="second-writer")
            await session.commit()
            return seen

    task = asyncio.create_task(second())
    await second_started.wait()
    await create_vendor(first, clock, name="First", slug="first-writer")
    await first.commit()
    await first.close()
    await task
    async with db.session() as session:
        slugs = set(await session.exec(select(Vendor.slug)))
    assert {"first-writer", "second-writer"} <= slugs
