"""The SQLite engine's cursor (``infra.sqlite_driver``) does each statement in one call
on aiosqlite's thread; what SQLAlchemy reads of a DB-API cursor stays as the driver gives
it: rows, row counts (one statement and many), the last row id, errors as SQLAlchemy's."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import exc, text

from infra.db import Database, is_sqlite
from infra.sqlite_driver import OneTripCursor


@pytest.fixture
async def sqlite_db(db: Database) -> AsyncIterator[Database]:
    if not is_sqlite(db.url):
        pytest.skip("the SQLite driver only")
    async with db.transaction() as session:
        await session.execute(text("DROP TABLE IF EXISTS driver_probe"))
        await session.execute(
            text("CREATE TABLE driver_probe (id INTEGER PRIMARY KEY, name TEXT UNIQUE)")
        )
    yield db
    async with db.transaction() as session:
        await session.execute(text("DROP TABLE driver_probe"))


async def test_the_cursor_reports_what_the_driver_does(sqlite_db: Database) -> None:
    async with sqlite_db.transaction() as session:
        connection = await session.connection()
        raw = await connection.get_raw_connection()
        assert type(raw.dbapi_connection.cursor()) is OneTripCursor  # type: ignore[union-attr]
        inserted = await connection.execute(
            text("INSERT INTO driver_probe (name) VALUES (:name)"),
            [{"name": "a"}, {"name": "b"}, {"name": "c"}],
        )
        assert inserted.rowcount == 3
        one = await connection.execute(text("INSERT INTO driver_probe (name) VALUES ('d')"))
        assert one.lastrowid == 4
        updated = await connection.execute(
            text("UPDATE driver_probe SET name = name || '!' WHERE id > 1")
        )
        assert updated.rowcount == 3
        returned = await connection.execute(
            text("DELETE FROM driver_probe WHERE id >= 3 RETURNING id, name")
        )
        assert sorted(returned.all()) == [(3, "c!"), (4, "d!")]
        rows = await connection.execute(text("SELECT id, name FROM driver_probe ORDER BY id"))
        assert list(rows.keys()) == ["id", "name"]
        assert rows.fetchmany() == [(1, "a")]  # the DB-API's arraysize: one
        assert rows.all() == [(2, "b!")]
        rows = await connection.execute(text("SELECT id FROM driver_probe ORDER BY id"))
        assert [list(part) for part in rows.partitions(1)] == [[(1,)], [(2,)]]


async def test_an_error_is_sqlalchemys_and_the_connection_goes_on(sqlite_db: Database) -> None:
    async with sqlite_db.transaction() as session:
        await session.execute(text("INSERT INTO driver_probe (name) VALUES ('x')"))
    with pytest.raises(exc.IntegrityError, match="UNIQUE"):
        async with sqlite_db.transaction() as session:
            await session.execute(text("INSERT INTO driver_probe (name) VALUES ('x')"))
    with pytest.raises(exc.OperationalError, match="no such table"):
        async with sqlite_db.session() as session:
            await session.execute(text("SELECT * FROM no_such_table"))
    async with sqlite_db.session() as session:
        assert (await session.execute(text("SELECT count(*) FROM driver_probe"))).scalar() == 1
