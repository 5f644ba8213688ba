"""Async SQL engine and sessions for SQLite (embedded default) and PostgreSQL.

Every table is a SQLModel class on the shared metadata below; its naming convention gives
constraints stable names so migrations read the same on both databases.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import BigInteger, DateTime, Engine, Executable, Integer, event, inspect
from sqlalchemy.engine import Dialect, ExceptionContext, Result, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.types import TypeDecorator
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from infra import jsonio, sqlite_driver
from infra.cache import TableEpochs
from infra.sqlite_driver import OneTripDBAPI
from infra.tasks import to_completion

SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = SQLModel.metadata

# The session type as the layers above name it (schema/ imports no SQL library).
DbSession = AsyncSession


# An amount in minor units on the tables made before money columns were declared BIGINT:
# PostgreSQL's BIGINT, SQLite's INTEGER as those tables declare it (64 bits there already;
# migration 0035).
MINOR_UNITS = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC instant on every backend (SQLite stores no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where a UTC instant is required")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def ensure_sqlite_directory(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


# A pooled PostgreSQL connection is checked before use only when it has been idle longer
# than this (HikariCP's "alive bypass window", 500 ms there too). SQLAlchemy's pre-ping
# checks at every checkout, and with asyncpg a check is three round trips (BEGIN, the
# ping, ROLLBACK): ~0.4 ms of client CPU before every transaction, for a connection used a
# moment ago. One that outlived a server restart has been idle longer than the restart
# took, so it is checked; should one slip through, its first statement fails as a
# disconnect, and SQLAlchemy then replaces every connection of the pool.
PING_AFTER_IDLE_SECONDS = 0.5


@dataclass(frozen=True)
class Waits:
    """How long a transaction may hold what others wait for, or wait itself, on every
    connection a ``Database`` opens (``CHANNELBOARD_DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS``,
    ``CHANNELBOARD_SQLITE_BUSY_TIMEOUT_SECONDS``).

    - ``idle_in_transaction_seconds`` (PostgreSQL's ``idle_in_transaction_session_timeout``;
      0: none): the server ends a session that sits inside a transaction, sending nothing,
      for longer, and rolls its transaction back, releasing its row and advisory locks. A
      process stopped or hung mid-transaction (SIGSTOP, a debugger, a stalled host) would
      otherwise make every writer that needs one of its locks wait for ever. Only idleness
      counts: a statement that waits for a lock (the booking and signal advisory locks are
      waited for on purpose) is not idle, so no wait is cut short; nor is a long statement.
      Our transactions sit idle between statements only for some Python work or a Redis
      call; the default leaves room for a large vendor's batch passes (the daily rule run,
      ``signals rebuild``), which compute for tens of seconds between two statements.
    - ``sqlite_busy_seconds`` (SQLite's busy timeout): how long a writer waits for the write
      lock another connection holds before it fails ("database is locked"; answered
      SERVICE_UNAVAILABLE, ``infra.outages.contended``). SQLite has no way to end another
      process's transaction: a writer stuck holding the lock blocks writes until it is
      killed, and then nothing of its transaction stays."""

    idle_in_transaction_seconds: float = 300.0
    sqlite_busy_seconds: float = 30.0


# JSON columns' text through orjson (``infra.jsonio``: as the json module reads and writes it).
_JSON: dict[str, Any] = {"json_serializer": jsonio.dumps, "json_deserializer": jsonio.loads}


def create_engine(
    url: str,
    *,
    echo: bool = False,
    ping_after_idle: float = PING_AFTER_IDLE_SECONDS,
    waits: Waits = Waits(),
) -> AsyncEngine:
    ensure_sqlite_directory(url)
    if is_sqlite(url):
        engine = create_async_engine(
            url, echo=echo, connect_args={"timeout": waits.sqlite_busy_seconds},
            module=OneTripDBAPI(), **_JSON,
        )  # fmt: skip
        _configure_sqlite(engine, waits)
        return engine
    engine = create_async_engine(
        url, echo=echo, pool_size=10, max_overflow=20,
        connect_args=_postgresql_settings(url, waits), **_JSON,
    )  # fmt: skip
    _ping_after_idle(engine, ping_after_idle)
    return engine


def _postgresql_settings(url: str, waits: Waits) -> dict[str, Any]:
    """The session settings of ``waits``, sent when a connection opens (no round trip):
    asyncpg's ``server_settings``, else libpq's ``options``."""
    settings = {
        "idle_in_transaction_session_timeout": str(round(waits.idle_in_transaction_seconds * 1000))
    }
    if make_url(url).get_driver_name() == "asyncpg":
        return {"server_settings": settings}
    return {"options": " ".join(f"-c {name}={value}" for name, value in settings.items())}


_LAST_USED = "channelboard_last_used"


def _ping_after_idle(engine: AsyncEngine, idle_seconds: float) -> None:
    """Check a pooled connection's liveness at checkout when it has been idle longer than
    ``idle_seconds`` (see ``PING_AFTER_IDLE_SECONDS``); one that fails is replaced (the
    pool retries the checkout on DisconnectionError, as for its own pre-ping)."""
    sync = engine.sync_engine

    @event.listens_for(sync, "connect")
    @event.listens_for(sync, "checkin")
    def _used(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_LAST_USED] = time.monotonic()

    @event.listens_for(sync, "checkout")
    def _check(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        last = record.info.get(_LAST_USED)
        if last is not None and time.monotonic() - last < idle_seconds:
            return
        try:
            sync.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError("the pooled connection did not answer") from exc


def _configure_sqlite(engine: AsyncEngine, waits: Waits) -> None:
    # pysqlite's own transaction handling defers BEGIN and breaks SAVEPOINT; SQLAlchemy's
    # documented remedy is to switch it off and emit BEGIN ourselves. Writers (begin_write)
    # BEGIN IMMEDIATE: in WAL mode a deferred transaction that reads and then writes fails at
    # once with SQLITE_BUSY when another connection wrote in between (the busy timeout does
    # not apply to that upgrade); taking the write lock up front makes writers queue instead.
    # Readers stay deferred, so queries never wait for writers (nor deadlock against a
    # writer their own request opened).
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={round(waits.sqlite_busy_seconds * 1000)}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get(WRITE_INTENT, False)
        sql = "BEGIN IMMEDIATE" if immediate else "BEGIN"
        # Sent with the transaction's first statement (one crossing to aiosqlite's thread
        # fewer; none for a transaction that runs no statement).
        if not sqlite_driver.begin_soon(connection.connection.dbapi_connection, sql):
            connection.exec_driver_sql(sql)

    # A statement cancelled while aiosqlite's thread runs it (a task cancelled mid-query:
    # a clock job as its app stops) is no lost connection: the thread finishes the
    # statement, and what is queued after it (the rollback) runs next. SQLAlchemy treats
    # the cancellation as a disconnect, though, and closes the connection without a
    # rollback; Python's sqlite3 then leaves it open as a "zombie" (sqlite3_close_v2) while
    # the cancelled query's cursor lives (its traceback keeps it), holding the write lock:
    # every other writer then fails with "database is locked". So it stays connected and
    # the transaction's rollback releases the lock.
    @event.listens_for(engine.sync_engine, "handle_error")
    def _cancelled_is_no_disconnect(context: ExceptionContext) -> None:
        if isinstance(context.original_exception, asyncio.CancelledError):
            context.is_disconnect = False


WRITE_INTENT = "channelboard_write_intent"

_Row = TypeVar("_Row", bound=SQLModel)


def for_change(statement: SelectOfScalar[_Row], model: type[_Row]) -> SelectOfScalar[_Row]:
    """The statement that loads a row a service is about to change after checking its
    state: the row locked for the rest of the transaction (FOR NO KEY UPDATE of ``model``'s
    table only, whatever the statement joins), its attributes read anew even when the
    session holds it already. Two requests that change one row at once (a double click,
    approve and reject) then take turns, and the second checks the state the first left:
    without it both read the old state on PostgreSQL and both go through. NO KEY: a change
    never alters the row's key, so rows that name it by foreign key (a contest's credits
    inserted by the dispatcher) are written meanwhile; FOR UPDATE blocked their key check,
    and a change that then wrote the same rows (a contest's re-score) deadlocked with them.
    On SQLite the write transaction's lock (``begin_write``) serialises writers already, and
    the clause is left out of the SQL."""
    return statement.with_for_update(of=model, key_share=True).execution_options(
        populate_existing=True
    )


async def begin_write(session: AsyncSession) -> None:
    """Start the session's transaction now, as a writer: on SQLite it takes the write lock
    (BEGIN IMMEDIATE, waiting for it up to the busy timeout), on PostgreSQL it only opens
    the transaction. A no-op when the session is already in a transaction. Every service
    that reads and then writes runs in such a transaction: ``schema.mutations.run`` and
    ``Database.transaction()`` start one."""
    if session.sync_session.info.get(_READ_ONLY):
        raise ReadOnlySessionError("begin_write on a read-only session")
    if session.in_transaction():
        return
    await session.connection(execution_options={WRITE_INTENT: True})


class LockedAsyncSession(AsyncSession):
    """An AsyncSession that serialises its own calls.

    GraphQL resolves sibling fields concurrently, and a request shares one session; an
    AsyncSession must not be used by two coroutines at once, so each call takes a lock.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock = asyncio.Lock()

    async def exec(self, *args: Any, **kwargs: Any) -> Any:
        async with self._lock:
            return await super().exec(*args, **kwargs)

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        async with self._lock:
            return await super().execute(*args, **kwargs)

    async def scalar(self, *args: Any, **kwargs: Any) -> Any:
        async with self._lock:
            return await super().scalar(*args, **kwargs)

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        async with self._lock:
            return await super().get(*args, **kwargs)

    async def flush(self, objects: Any = None) -> None:
        async with self._lock:
            await super().flush(objects)

    async def refresh(self, *args: Any, **kwargs: Any) -> None:
        async with self._lock:
            await super().refresh(*args, **kwargs)

    async def commit(self) -> None:
        async with self._lock:
            await super().commit()

    async def rollback(self) -> None:
        async with self._lock:
            await super().rollback()


# Which tables a session wrote, reported to the Database's TableEpochs once it commits (the
# process-local read caches of infra.cache depend on it).
_EPOCHS = "channelboard_epochs"
_WRITTEN = "channelboard_written"


def _written(session: Session) -> set[str]:
    written: set[str] = session.info.setdefault(_WRITTEN, set())
    return written


def wrote(session: AsyncSession, *tables: str) -> None:
    """Report tables written by raw SQL text (or a SELECT whose CTEs write), which no hook
    below can read, so the read caches hear of them at commit like any other."""
    if _EPOCHS in session.sync_session.info:
        _written(session.sync_session).update(tables)


async def execute_core(
    session: AsyncSession,
    statement: Executable,
    params: Any = None,
    *,
    writes: Iterable[str] = (),
) -> Result[*tuple[Any, ...]]:
    """Execute a Core statement on the session's connection, past the ORM's work per
    statement (its execute events and compile state: about half the CPU of a small
    statement on SQLite). For hot paths of a few statements run very often (a signal
    handler's run), with statements built once (a statement is also compiled once: its
    cache key is kept with it). As through the ORM, a write is refused on a read-only
    session and reported to the read caches (and nothing is flushed first: our sessions do
    not autoflush). ``writes``: the tables a statement writes that is no INSERT, UPDATE or
    DELETE of its own (a SELECT whose CTEs write, ``signals.store.Writes``)."""
    table = getattr(statement, "table", None)
    written = [table.name] if table is not None and getattr(statement, "is_dml", False) else []
    written += writes
    if written:
        if session.sync_session.info.get(_READ_ONLY):
            raise ReadOnlySessionError("a read-only session (a query) tried to write")
        wrote(session, *written)
    # A request's session is shared by sibling resolvers: its calls take its lock.
    lock = session._lock if isinstance(session, LockedAsyncSession) else contextlib.nullcontext()
    async with lock:
        return await (await _connection(session)).execute(statement, params)


@asynccontextmanager
async def writes_together(session: AsyncSession, *, to_commit: bool = False) -> AsyncIterator[None]:
    """Writes of the block (statements that return no rows) go to the database together:
    on SQLite in one crossing to aiosqlite's thread, with the next statement that returns
    rows or at the block's end (``infra.sqlite_driver``); elsewhere each as it comes. Their
    row counts are not known: for writes that need none. ``to_commit``: on SQLite they may
    wait past the block's end, for the next statement or the transaction's COMMIT, which
    they then share (one crossing fewer; a write's failure is raised there)."""
    raw = await (await _connection(session)).get_raw_connection()
    async with sqlite_driver.together(raw.dbapi_connection, to_commit=to_commit):
        yield


_CONNECTION = "channelboard_connection"


async def _connection(session: AsyncSession) -> AsyncConnection:
    """``session.connection()``, kept for the rest of the session's transaction: asking
    the session again is a trip into its greenlet for the same connection (~0.01 ms, a
    statement of a signal run in ten). A new transaction, or one (or its savepoint) no
    longer active, which the session refuses with its reason, asks the session."""
    sync = session.sync_session
    transaction = sync.get_transaction()
    kept = sync.info.get(_CONNECTION)
    if kept is not None and transaction is not None and kept[0] is transaction:
        nested = sync.get_nested_transaction()
        if transaction.is_active and (nested is None or nested.is_active):
            connection: AsyncConnection = kept[1]
            return connection
    connection = await session.connection()
    sync.info[_CONNECTION] = (sync.get_transaction(), connection)
    return connection


@event.listens_for(Session, "after_flush")
def _record_flushed(session: Session, _context: Any) -> None:
    if _EPOCHS not in session.info:
        return
    for obj in (*session.new, *session.dirty, *session.deleted):
        _written(session).update(t.name for t in inspect(obj).mapper.tables)


@event.listens_for(Session, "do_orm_execute")
def _record_statement(state: ORMExecuteState) -> None:
    if _EPOCHS in state.session.info and (state.is_insert or state.is_update or state.is_delete):
        table = getattr(state.statement, "table", None)
        if table is not None:
            _written(state.session).add(table.name)


# SQLAlchemy sends after_commit and after_rollback for a SAVEPOINT's release and rollback
# too. Only the transaction's own end counts: a savepoint released is not committed (the
# transaction may still roll back, or its process die), and one rolled back leaves what the
# transaction wrote before it to be told at its commit.


@event.listens_for(Session, "after_commit")
def _report_written(session: Session) -> None:
    if session.in_nested_transaction():
        return
    written = session.info.pop(_WRITTEN, None)
    epochs = session.info.get(_EPOCHS)
    if written and epochs is not None:
        epochs.changed(written)


@event.listens_for(Session, "after_rollback")
def _forget_written(session: Session) -> None:
    if not session.in_nested_transaction():
        session.info.pop(_WRITTEN, None)


# Queries and subscriptions never write (periodic work runs in the dispatcher or a
# command): their sessions are marked read-only, and any write through them fails loudly
# instead of committing quietly on a read path.
_READ_ONLY = "channelboard_read_only"


class ReadOnlySessionError(RuntimeError):
    """A write was attempted through a read-only session (a query or a subscription)."""


def read_only(session: AsyncSession) -> AsyncSession:
    """Mark the session read-only: flushing changes, INSERT/UPDATE/DELETE statements,
    ``begin_write`` and ``commit`` raise ReadOnlySessionError."""
    session.sync_session.info[_READ_ONLY] = True
    return session


@event.listens_for(Session, "before_flush")
def _refuse_flush(session: Session, _context: Any, _instances: Any) -> None:
    if session.info.get(_READ_ONLY):
        raise ReadOnlySessionError("a read-only session (a query) tried to flush changes")


@event.listens_for(Session, "do_orm_execute")
def _refuse_statement(state: ORMExecuteState) -> None:
    if state.session.info.get(_READ_ONLY) and (
        state.is_insert or state.is_update or state.is_delete
    ):
        raise ReadOnlySessionError("a read-only session (a query) tried to write")


@event.listens_for(Session, "before_commit")
def _refuse_commit(session: Session) -> None:
    if session.info.get(_READ_ONLY):
        raise ReadOnlySessionError("a read-only session (a query) tried to commit")


# A statement run on a session's connection (``(await session.connection()).execute(...)``)
# passes the session's events by. The connection carries its session (an execution option
# set as the session's transaction begins), so that a write there is refused on a read-only
# session and reported to the read caches like any other: a writer need not remember to
# call ``wrote``. (Raw SQL text is no statement SQLAlchemy can read: its writers call
# ``wrote``.)
_SESSION = "channelboard_session"
# The execution option of a write the read caches need not hear of (no cached value reads
# what it writes: an API key's last use).
UNTRACKED = "channelboard_untracked"


@event.listens_for(Session, "after_begin")
def _tie_connection(session: Session, _transaction: Any, connection: Any) -> None:
    if _EPOCHS in session.info or session.info.get(_READ_ONLY):
        connection.execution_options(**{_SESSION: session})


@event.listens_for(Engine, "before_execute")
def _connection_write(
    _conn: Any, statement: Any, _multiparams: Any, _params: Any, execution_options: Any
) -> None:
    session = execution_options.get(_SESSION)
    if session is None or not getattr(statement, "is_dml", False):
        return
    if session.info.get(_READ_ONLY):
        raise ReadOnlySessionError("a read-only session (a query) tried to write")
    name = getattr(getattr(statement, "table", None), "name", None)
    if name is not None and _EPOCHS in session.info and not execution_options.get(UNTRACKED):
        _written(session).add(name)


class Database:
    """An engine and its session factory; one per process."""

    def __init__(
        self,
        url: str,
        *,
        echo: bool = False,
        ping_after_idle: float = PING_AFTER_IDLE_SECONDS,
        waits: Waits = Waits(),
    ) -> None:
        self.url = url
        self.engine = create_engine(url, echo=echo, ping_after_idle=ping_after_idle, waits=waits)
        self.epochs = TableEpochs()
        self._sessions = async_sessionmaker(
            self.engine, class_=LockedAsyncSession, expire_on_commit=False, autoflush=False,
            info={_EPOCHS: self.epochs},
        )  # fmt: skip

    def new_session(self) -> AsyncSession:
        return self._sessions()

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self._sessions() as session:
            yield session

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[AsyncSession]:
        """A session whose statements all read one state of the database: the snapshot of
        its first read. For a reader that reads one state in several statements (a
        rebuild's scores, then the events they count). PostgreSQL's default (READ
        COMMITTED) gives each statement a snapshot of its own, so a transaction that
        commits between two of them shows in the second only: here its transaction is
        REPEATABLE READ (only reads: it never fails with a serialization error). SQLite's
        read transaction keeps one snapshot already."""
        async with self._sessions() as session:
            if self.engine.dialect.name == "postgresql":
                await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            yield session

    @asynccontextmanager
    async def read_session(self) -> AsyncIterator[AsyncSession]:
        """A session that refuses to write (see ``read_only``): for subscriptions."""
        async with self._sessions() as session:
            yield read_only(session)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A writer's session (see ``begin_write``) that commits when the block ends
        normally and rolls back otherwise. The commit or the rollback, and returning the
        connection, run to their end even when the task is cancelled meanwhile (the
        cancellation is raised after them): a transaction is never left half-ended, holding
        its locks, on a connection nobody will return."""
        async with self._sessions() as session:  # closes to completion (SQLAlchemy)
            try:
                await begin_write(session)
                yield session
                await to_completion(session.commit())
            except BaseException:
                await to_completion(session.rollback())
                raise

    async def dispose(self) -> None:
        await self.engine.dispose()
