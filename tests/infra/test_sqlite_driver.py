"""The SQLite engine's cursor (``infra.sqlite_driver``) does each statement in one call
on aiosqlite's thread; what SQLAlchemy reads of a DB-API cursor stays as the driver gives
it: rows, row counts (one statement and many), the last row id, errors as SQLAlchemy's."""

from __future__ import annotations

import contextvars
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import exc, text
from sqlalchemy.ext.asyncio import AsyncSession

from infra.db import Database, execute_core, is_sqlite, writes_together
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


# The Crossings whose test is running, in the test's context: the tasks the test starts
# (a commit run to completion in a task of its own) inherit it; the test app's background
# jobs, started before, do not.
_WATCHING: contextvars.ContextVar[Crossings | None] = contextvars.ContextVar(
    "watching", default=None
)


class Crossings:
    """The calls made on aiosqlite's thread, by name, on the connections a test watches, on
    the test's behalf. The test app's background jobs share the pool: a connection a
    session gave back (at its rollback, say) may serve one of them before the test looks
    (CI, 2026-12-07: two of a background job's calls counted on the watched connection)."""

    def __init__(self) -> None:
        self.calls: list[tuple[aiosqlite.Connection, str, Crossings | None]] = []
        self.watched: set[aiosqlite.Connection] = set()

    def watch(self, dbapi_connection: Any) -> None:
        """Count the test's calls on this connection (SQLAlchemy's adapted DB-API
        connection)."""
        self.watched.add(dbapi_connection._connection)
        _WATCHING.set(self)

    async def watch_session(self, session: AsyncSession) -> None:
        self.watch((await (await session.connection()).get_raw_connection()).dbapi_connection)

    def names(self) -> list[str]:
        return [
            name
            for connection, name, watcher in self.calls
            if connection in self.watched and watcher is self
        ]

    def clear(self) -> None:
        self.calls.clear()


@pytest.fixture
def crossings(monkeypatch: pytest.MonkeyPatch) -> Crossings:
    counted = Crossings()
    real = aiosqlite.Connection._execute

    async def counting(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        counted.calls.append((self, getattr(fn, "__name__", repr(fn)), _WATCHING.get()))
        return await real(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counting)
    return counted


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


async def test_a_rollback_right_after_a_commit_stays_off_the_thread(
    sqlite_db: Database, crossings: Crossings
) -> None:
    """The pool's reset after a COMMIT (a rollback) makes no call on aiosqlite's thread:
    SQLite is outside any transaction then. A rollback after anything else does, and rolls
    back."""
    async with sqlite_db.transaction() as session:
        await crossings.watch_session(session)
        await session.execute(text("INSERT INTO driver_probe (name) VALUES ('kept')"))
    # BEGIN IMMEDIATE with the insert, the commit; the pool's rollback skipped.
    assert crossings.names() == ["_run", "commit"]

    def on_the_dbapi_connection(connection: Any) -> None:
        raw = connection.connection.dbapi_connection  # as SQLAlchemy drives it
        crossings.watch(raw)
        crossings.clear()
        raw.rollback()  # a connection just returned to the pool: nothing to undo
        assert crossings.names() == []
        raw.cursor().execute("BEGIN")
        raw.cursor().execute("INSERT INTO driver_probe (name) VALUES ('undone')")
        raw.rollback()
        assert crossings.names() == ["_run", "_run", "rollback"]
        raw.rollback()  # rolled back already
        assert crossings.names() == ["_run", "_run", "rollback"]
        # A streaming cursor's statement too.
        streaming = raw.cursor(server_side=True)
        streaming.execute("BEGIN")
        streaming.execute("INSERT INTO driver_probe (name) VALUES ('streamed')")
        streaming.close()
        crossings.clear()
        raw.rollback()
        assert crossings.names() == ["rollback"]
        names = raw.cursor()
        names.execute("SELECT name FROM driver_probe ORDER BY id")
        assert names.fetchall() == [("kept",)]

    async with sqlite_db.engine.connect() as connection:
        await connection.run_sync(on_the_dbapi_connection)


async def test_a_failed_commit_leaves_the_rollback_to_do(sqlite_db: Database) -> None:
    """A COMMIT that fails (a deferred foreign key violated) leaves the transaction open:
    the rollback that follows crosses to the thread and undoes it."""

    def on_the_dbapi_connection(connection: Any) -> None:
        raw = connection.connection.dbapi_connection
        raw.cursor().execute("CREATE TEMP TABLE parent_probe (id INTEGER PRIMARY KEY)")
        raw.cursor().execute(
            "CREATE TEMP TABLE child_probe (parent_id INTEGER REFERENCES parent_probe (id)"
            " DEFERRABLE INITIALLY DEFERRED)"
        )
        raw.cursor().execute("BEGIN")
        raw.cursor().execute("INSERT INTO child_probe (parent_id) VALUES (7)")
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
            raw.commit()
        raw.rollback()
        count = raw.cursor()
        count.execute("SELECT count(*) FROM child_probe")
        assert count.fetchall() == [(0,)]
        raw.cursor().execute("DROP TABLE child_probe")
        raw.cursor().execute("DROP TABLE parent_probe")

    async with sqlite_db.engine.connect() as connection:
        await connection.run_sync(on_the_dbapi_connection)


async def _names(db: Database) -> list[str]:
    async with db.session() as session:
        rows = await session.execute(text("SELECT name FROM driver_probe ORDER BY id"))
        return [name for (name,) in rows]


async def test_writes_together_share_one_crossing(
    sqlite_db: Database, crossings: Crossings
) -> None:
    """Writes of a ``writes_together`` block run in order in one call on the thread, at the
    block's end or with the next statement that returns rows (which sees them)."""
    insert = text("INSERT INTO driver_probe (name) VALUES (:name)")
    async with sqlite_db.transaction() as session:
        await crossings.watch_session(session)  # (no crossing: the BEGIN waits)
        async with writes_together(session):
            await execute_core(session, insert, {"name": "a"})
            await execute_core(session, insert, [{"name": "b"}, {"name": "c"}])
            await execute_core(session, text("UPDATE driver_probe SET name = 'a!' WHERE id = 1"))
            assert crossings.names() == []  # kept
            seen = await execute_core(session, text("SELECT name FROM driver_probe ORDER BY id"))
            assert seen.scalars().all() == ["a!", "b", "c"]
            assert crossings.names() == ["_run"]  # BEGIN, the three writes, the read
            await execute_core(session, text("DELETE FROM driver_probe WHERE name = 'b'"))
            returned = await execute_core(
                session, text("INSERT INTO driver_probe (name) VALUES ('d') RETURNING name")
            )
            assert returned.scalars().all() == ["d"]  # RETURNING: rows, so not kept
            await execute_core(session, insert, {"name": "e"})
        assert crossings.names() == ["_run", "_run", "_run"]  # the block's end: the last write
    assert await _names(sqlite_db) == ["a!", "c", "d", "e"]


async def test_a_kept_write_that_fails_is_sqlalchemys_error_and_nothing_is_written(
    sqlite_db: Database,
) -> None:
    insert = text("INSERT INTO driver_probe (name) VALUES (:name)")

    async def write() -> None:
        async with sqlite_db.transaction() as session, writes_together(session):
            await execute_core(session, insert, {"name": "x"})
            await execute_core(session, insert, [{"name": "y"}, {"name": "x"}])
            await execute_core(session, insert, {"name": "z"})

    with pytest.raises(exc.IntegrityError, match="UNIQUE") as raised:
        await write()
    assert raised.value.statement == "INSERT INTO driver_probe (name) VALUES (?)"
    assert raised.value.params == [("y",), ("x",)]
    assert await _names(sqlite_db) == []

    async def write_then_read() -> None:  # the kept writes fail in the read's crossing
        async with sqlite_db.transaction() as session, writes_together(session):
            await execute_core(session, insert, [{"name": "x"}, {"name": "x"}])
            await execute_core(session, text("SELECT count(*) FROM driver_probe"))

    with pytest.raises(exc.IntegrityError, match="UNIQUE") as raised:
        await write_then_read()
    assert raised.value.orig.__notes__ == [  # (the statement SQLAlchemy names is the read)
        "(sent before the statement, and failed: INSERT INTO driver_probe (name) VALUES (?))"
    ]
    assert await _names(sqlite_db) == []
    async with sqlite_db.transaction() as session:  # the connection goes on
        await session.execute(insert, {"name": "after"})
    assert await _names(sqlite_db) == ["after"]


async def test_writes_kept_to_the_commit_share_its_crossing(
    sqlite_db: Database, crossings: Crossings
) -> None:
    """With ``to_commit`` a block's writes wait past its end, for the transaction's next
    statement or its COMMIT, which they then share (a signal run ends with its writes)."""
    insert = text("INSERT INTO driver_probe (name) VALUES (:name)")
    async with sqlite_db.transaction() as session:
        await crossings.watch_session(session)
        async with writes_together(session, to_commit=True):
            await execute_core(session, insert, {"name": "a"})
            await execute_core(session, insert, [{"name": "b"}, {"name": "c"}])
        assert crossings.names() == []  # kept past the block's end
    assert crossings.names() == ["_run"]  # the BEGIN, the writes and the COMMIT
    assert await _names(sqlite_db) == ["a", "b", "c"]
    crossings.clear()
    async with sqlite_db.transaction() as session:
        await crossings.watch_session(session)
        async with writes_together(session, to_commit=True):
            await execute_core(session, insert, {"name": "d"})
        # A later write is not kept: it crosses, after the kept one, which it sees.
        await execute_core(session, text("UPDATE driver_probe SET name = 'd!' WHERE name = 'd'"))
        assert crossings.names() == ["_run"]
    assert crossings.names() == ["_run", "commit"]
    assert await _names(sqlite_db) == ["a", "b", "c", "d!"]


async def test_writes_kept_to_the_commit_go_with_a_rollback_or_fail_at_the_commit(
    sqlite_db: Database,
) -> None:
    insert = text("INSERT INTO driver_probe (name) VALUES (:name)")

    async def fail_after_writing() -> None:
        async with sqlite_db.transaction() as session:
            async with writes_together(session, to_commit=True):
                await execute_core(session, insert, {"name": "dropped"})
            raise RuntimeError("the run failed after its writes")

    async def write_twice() -> None:
        async with sqlite_db.transaction() as session:
            async with writes_together(session, to_commit=True):
                await execute_core(session, insert, {"name": "y"})
                await execute_core(session, insert, [{"name": "x"}, {"name": "x"}])

    async def fail_half_way(session: AsyncSession) -> None:
        async with writes_together(session):
            await execute_core(session, insert, {"name": "no"})
            raise RuntimeError("the flush failed half-way")

    with pytest.raises(RuntimeError):
        await fail_after_writing()
    with pytest.raises(exc.IntegrityError, match="UNIQUE"):
        await write_twice()
    # A later block that raises drops its own writes, not those kept before it.
    async with sqlite_db.transaction() as session:
        async with writes_together(session, to_commit=True):
            await execute_core(session, insert, {"name": "kept"})
        with pytest.raises(RuntimeError):
            await fail_half_way(session)
    async with sqlite_db.transaction() as session:  # the connection goes on
        await execute_core(session, insert, {"name": "next"})
    assert await _names(sqlite_db) == ["kept", "next"]


async def test_a_block_that_raises_drops_what_it_kept(sqlite_db: Database) -> None:

    async def fail_half_way(session: AsyncSession) -> None:
        async with writes_together(session):
            await execute_core(session, text("INSERT INTO driver_probe (name) VALUES ('no')"))
            raise RuntimeError("the flush failed half-way")

    async with sqlite_db.transaction() as session:
        with pytest.raises(RuntimeError):
            await fail_half_way(session)
        await execute_core(session, text("INSERT INTO driver_probe (name) VALUES ('yes')"))
    assert await _names(sqlite_db) == ["yes"]


async def test_a_begin_crosses_with_the_first_statement_and_an_empty_one_not_at_all(
    sqlite_db: Database, crossings: Crossings
) -> None:
    async with sqlite_db.transaction() as session:
        await crossings.watch_session(session)  # begun, nothing run
    async with sqlite_db.session() as session:
        await crossings.watch_session(session)
    assert crossings.names() == []
    async with sqlite_db.session() as session:
        await crossings.watch_session(session)
        assert (await session.execute(text("SELECT count(*) FROM driver_probe"))).scalar() == 0
        await session.rollback()
    assert crossings.names() == ["_run", "rollback"]  # BEGIN with the read


async def test_a_begin_that_fails_is_sent_again_with_the_next_statement(
    sqlite_db: Database, tmp_path: Any
) -> None:
    """A BEGIN IMMEDIATE refused (another connection holds the write lock past the busy
    timeout) leaves nothing begun: the next statement begins first, so it does not run
    outside a transaction (autocommitted)."""
    path = sqlite_db.engine.url.database
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")

    def on_the_dbapi_connection(connection: Any) -> None:
        raw = connection.connection.dbapi_connection
        raw.cursor().execute("PRAGMA busy_timeout=50")
        raw.begin_soon("BEGIN IMMEDIATE")
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            raw.cursor().execute("INSERT INTO driver_probe (name) VALUES ('refused')")
        other.execute("ROLLBACK")
        raw.cursor().execute("INSERT INTO driver_probe (name) VALUES ('begun')")
        raw.rollback()  # undoes it: it ran in the transaction the BEGIN opened
        raw.cursor().execute("PRAGMA busy_timeout=30000")

    try:
        async with sqlite_db.engine.connect() as connection:
            await connection.run_sync(on_the_dbapi_connection)
    finally:
        other.close()
    assert await _names(sqlite_db) == []
