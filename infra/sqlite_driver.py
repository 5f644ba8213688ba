"""aiosqlite with one trip to its thread per statement.

aiosqlite runs each SQLite connection in a thread of its own, and every call crosses over
to it and back. SQLAlchemy's adapter makes three or four such calls per statement: open a
cursor, execute, fetch the rows, close the cursor. On a machine with more than one core
each crossing wakes the other thread, often on the other core: a lone approval's signal
run made 19 calls and spent 0.7-0.95 ms of CPU outside the event loop's thread. This
cursor does the four in one crossing, as SQLAlchemy's asyncpg adapter does for its driver
(rows fetched with the execute): 7 calls, 0.45-0.6 ms (docs/benchmarks.md, issue 13).

Everything else is SQLAlchemy's aiosqlite dialect: connections, transactions, error
translation, the per-connection execute lock, and server-side (streaming) cursors, which
keep fetching from the thread row batch by row batch.

Writes that return no rows may wait for a later crossing (``together``): the next
statement's, the block's end, or (``to_commit``) the transaction's COMMIT, which a signal
run's writes share (two crossings a lone approval, from three).

One crossing is saved besides: the pool's reset of a connection returned to it (a
rollback) right after the transaction's COMMIT. Python's sqlite3 does nothing on a
rollback outside a transaction (our connections never BEGIN implicitly: isolation_level
None), so once a commit or a rollback has returned and nothing has run on the connection
since, a rollback is skipped here instead of crossing to the thread to do nothing. A
commit or rollback that did not return (an error, a cancellation: it may still be
running) leaves the next rollback to cross, and to run after it.
"""

from __future__ import annotations

import re
import sqlite3
from collections import deque
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
    AsyncAdapt_aiosqlite_ss_cursor,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

_Outcome = tuple[Any, list[Any], int, Any]
_Statement = tuple[str, Any, bool]  # the SQL, its parameters, whether an executemany

# A statement that returns no rows, and so may wait for a later crossing (``together``).
_ROWLESS = re.compile(r"\s*(INSERT|UPDATE|DELETE)\b(?!.*\bRETURNING\b)", re.I | re.S)


class _KeptFailed(Exception):
    """A kept statement failed (``_run``): which one, and the driver's error."""

    def __init__(self, statement: _Statement, error: Exception) -> None:
        super().__init__(statement[0])
        self.statement, self.error = statement, error


def _execute(cursor: sqlite3.Cursor, sql: str, parameters: Any, many: bool) -> None:
    if many:
        cursor.executemany(sql, parameters)
    elif parameters is None:
        cursor.execute(sql)
    else:
        cursor.execute(sql, parameters)


def _run(
    connection: sqlite3.Connection,
    sql: str | None,
    parameters: Any,
    many: bool,
    kept: list[_Statement] = [],  # noqa: B006 (never changed)
) -> _Outcome:
    """On aiosqlite's thread: the kept statements, then the statement (if any), its rows,
    and the cursor closed."""
    cursor = connection.cursor()
    try:
        for statement in kept:
            try:
                _execute(cursor, *statement)
            except Exception as error:
                raise _KeptFailed(statement, error) from error
        if sql is None:
            return None, [], -1, None
        _execute(cursor, sql, parameters, many)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A buffered cursor whose statement is one call on the connection's thread."""

    __slots__ = ("_description", "_rowcount", "_lastrowid", "_arraysize")
    _awaitable_cursor_close = False  # nothing of it stays open on the thread

    def __init__(self, adapt_connection: Any) -> None:
        # No driver cursor is opened here (the base class opens one: a crossing).
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._rows = deque()
        self._soft_closed_memoized = EMPTY_DICT
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: Any = None
        self._arraysize = 1  # the DB-API default: fetchmany() without a size

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> Any:  # the driver's: None before an insert
        return self._lastrowid

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    def nextset(self) -> None:
        return None  # SQLite has one result set per statement

    def close(self) -> None:
        self._rows.clear()

    async def _async_soft_close(self) -> None:
        return None

    def setinputsizes(self, *inputsizes: Any) -> None:
        return None

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        try:
            return await_(self._one_trip(operation, parameters, many=False))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        try:
            return await_(self._one_trip(operation, seq_of_parameters, many=True))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    async def _one_trip(self, operation: Any, parameters: Any, *, many: bool) -> None:
        adapted: _Connection = self._adapt_connection  # type: ignore[assignment]
        adapted._ended = False  # it may BEGIN
        # Nothing of an earlier statement on this cursor outlives a failed one.
        self._description, self._rows, self._rowcount, self._lastrowid = None, deque(), -1, None
        if adapted._keeping and _ROWLESS.match(operation):
            adapted._kept.append((operation, parameters, many))  # run with a later crossing
            return
        outcome = await adapted._trip(operation, parameters, many)
        self._description, rows, self._rowcount, self._lastrowid = outcome
        self._rows = deque(rows)


class _StreamingCursor(AsyncAdapt_aiosqlite_ss_cursor):
    """SQLAlchemy's server-side cursor, telling its connection that a statement ran (and
    sending what waits for one first: a BEGIN, kept writes)."""

    __slots__ = ()

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        self._adapt_connection._before_statement()  # type: ignore[attr-defined]
        return super().execute(operation, parameters)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        self._adapt_connection._before_statement()  # type: ignore[attr-defined]
        return super().executemany(operation, seq_of_parameters)


class _Connection(AsyncAdapt_aiosqlite_connection):
    """The adapted connection: ``OneTripCursor`` cursors, and a rollback skipped when the
    last thing done on it was a commit or rollback that returned (``_ended``): SQLite is
    then outside any transaction, and sqlite3's rollback would do nothing."""

    __slots__ = ("_ended", "_kept", "_keeping", "_begin")
    _cursor_cls = OneTripCursor
    _ss_cursor_cls = _StreamingCursor

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self._ended = False  # unknown: a rollback crosses
        self._kept: list[_Statement] = []  # writes waiting for the next crossing
        self._keeping = False  # inside ``together``: writes are kept
        self._begin: str | None = None  # a BEGIN not sent yet (``begin_soon``)

    def begin_soon(self, sql: str) -> None:
        """BEGIN (``sql``) with the next statement, in its crossing."""
        self._ended = False
        self._begin = sql

    def _before_statement(self) -> None:
        """A statement is about to run past ``_trip``: send what must precede it."""
        self._ended = False
        if self._begin is not None or self._kept:
            await_(self._trip(None))

    async def _trip(self, sql: str | None, parameters: Any = None, many: bool = False) -> _Outcome:
        """One crossing: the BEGIN not sent yet, the kept writes, then the statement (if
        any) and its rows."""
        kept, connection = self._kept, self._connection
        if kept:
            self._kept = []
        begin, self._begin = self._begin, None
        if begin is not None:
            kept = [(begin, None, False), *kept]
        try:
            async with self._execute_mutex:
                return await connection._execute(  # type: ignore[no-any-return]
                    _run, connection._conn, sql, parameters, many, kept
                )
        except _KeptFailed as failed:
            if begin is not None and failed.statement is kept[0]:
                self._begin = begin  # not begun: the next statement must not autocommit
            # The driver's error, as a statement's own is raised (SQLAlchemy wraps it naming
            # the statement it runs, or ``together`` naming this one): with which it was.
            failed.error.add_note(f"(sent before the statement, and failed: {failed.statement[0]})")
            failed.error.kept_statement = failed.statement  # type: ignore[attr-defined]
            self._handle_exception(failed.error)

    @asynccontextmanager
    async def together(self, *, to_commit: bool = False) -> AsyncIterator[None]:
        """Writes of the block wait for the next crossing, or the block's end (see the
        module's notes); with ``to_commit``, past the block's end too: for the next
        statement's crossing, or the transaction's COMMIT, which they then share. A block
        that raises drops what it kept (its transaction is failing: the caller rolls it
        back); so does a rollback."""
        if self._keeping:  # already inside one
            yield
            return
        self._keeping = True
        earlier, kept_before = self._kept, len(self._kept)  # kept by an earlier block
        try:
            yield
        except BaseException:
            if self._kept is earlier:  # (else they crossed meanwhile)
                del self._kept[kept_before:]
            else:
                self._kept = []
            raise
        finally:
            self._keeping = False
        if to_commit or not self._kept:
            return
        try:
            self._ended = False
            await self._trip(None)
        except self.dbapi.Error as error:  # outside SQLAlchemy's execution: as it reports one
            sql, parameters, many = getattr(error, "kept_statement", (None, None, False))
            raise DBAPIError.instance(
                sql, parameters, error, self.dbapi.Error, ismulti=many
            ) from error

    def rollback(self) -> None:
        self._kept = []  # writes of the transaction never sent
        if self._begin is not None:  # nothing ran since the BEGIN, which was never sent
            self._begin = None
            self._ended = True
        if self._ended:
            return
        super().rollback()
        self._ended = True

    def commit(self) -> None:
        if self._kept:  # the kept writes and the COMMIT: one crossing
            self._ended = False  # until it returns (it may fail, or be cancelled midway)
            await_(self._trip("COMMIT"))
            self._ended = True
            return
        if self._begin is not None:  # nothing ran since the BEGIN, which was never sent
            self._begin = None
            self._ended = True
            return
        self._ended = False  # until it returns (it may fail, or be cancelled midway)
        super().commit()
        self._ended = True

    @property
    def isolation_level(self) -> Any:
        return self._connection.isolation_level

    @isolation_level.setter
    def isolation_level(self, value: Any) -> None:
        self._ended = False
        AsyncAdapt_aiosqlite_connection.isolation_level.fset(self, value)  # type: ignore[attr-defined]

    def create_function(self, *args: Any, **kw: Any) -> None:
        self._ended = False
        super().create_function(*args, **kw)


class OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """SQLAlchemy's aiosqlite DB-API adapter, handing out ``OneTripCursor`` cursors; given
    to ``create_async_engine(..., module=...)``."""

    def __init__(self) -> None:
        super().__init__(aiosqlite, sqlite3)

    def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
        adapted = super().connect(*arg, **kw)
        return _Connection(self, adapted._connection)


def begin_soon(dbapi_connection: Any, sql: str) -> bool:
    """``_Connection.begin_soon`` for a connection of this driver (True); for another,
    nothing (False: the caller begins)."""
    if isinstance(dbapi_connection, _Connection):
        dbapi_connection.begin_soon(sql)
        return True
    return False


def together(
    dbapi_connection: Any, *, to_commit: bool = False
) -> AbstractAsyncContextManager[None]:
    """``_Connection.together`` for a connection of this driver; for another, nothing."""
    if isinstance(dbapi_connection, _Connection):
        return dbapi_connection.together(to_commit=to_commit)
    return nullcontext()
