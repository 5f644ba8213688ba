"""SQLite writer transactions (Database.transaction, schema.mutations.run) take the write
lock when they begin (infra.db emits BEGIN IMMEDIATE); readers do not. In WAL mode a
deferred transaction that reads and then writes fails at once with 'database is locked'
when another connection wrote in between, whatever the busy timeout; an immediate one
makes writers queue."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
from sqlalchemy.engine import make_url
from sqlmodel import select

from infra.clock import OffsetClock
from infra.db import Database, is_sqlite
from partners import service
from partners.models import Vendor


@pytest.fixture
def sqlite_db(db: Database) -> Database:
    if not is_sqlite(db.url):
        pytest.skip("SQLite locking only")
    return db


async def test_a_transaction_holds_the_write_lock_from_its_first_statement(
    sqlite_db: Database,
) -> None:
    path = make_url(sqlite_db.url).database
    assert path is not None
    async with sqlite_db.transaction() as session:
        await session.exec(select(Vendor))  # a read opens the transaction
        other = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        finally:
            other.close()


async def test_concurrent_read_then_write_transactions_both_commit(
    sqlite_db: Database, clock: OffsetClock
) -> None:
    async def writer(name: str) -> None:
        async with sqlite_db.transaction() as session:
            await session.exec(select(Vendor))
            await service.create_vendor(session, clock, name=name, slug=name)

    await asyncio.gather(*(writer(f"writer-{i}") for i in range(8)))
    async with sqlite_db.session() as session:
        slugs = {v.slug for v in await session.exec(select(Vendor))}
    assert {f"writer-{i}" for i in range(8)} <= slugs


async def test_readers_do_not_take_the_write_lock(sqlite_db: Database) -> None:
    path = make_url(sqlite_db.url).database
    assert path is not None
    async with sqlite_db.session() as session:
        await session.exec(select(Vendor))  # a reader's transaction is deferred
        other = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # a writer elsewhere is not blocked
            other.execute("ROLLBACK")
        finally:
            other.close()
