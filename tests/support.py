"""Test transport: GraphQL over HTTP (JSON and multipart), a real websocket client, a live
server for websockets, and waiting for what happens in the background (``eventually``).
What tests build lives in ``tests.factories``."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import json
import re
import sqlite3
import threading
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

import asyncpg
import httpx
import jwt
import uvicorn
import websockets
from graphql import GraphQLInputObjectType, GraphQLList, GraphQLSchema, get_nullable_type
from redis.asyncio import RedisCluster
from redis.asyncio.connection import AbstractConnection
from sqlalchemy import Table, delete, event, func, make_url, text
from sqlalchemy.engine import AdaptedConnection, Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import TextClause
from sqlmodel import col, select
from starlette.applications import Starlette

from api.auth import issue_token
from api.settings import DEVELOPMENT_SECRET, Settings
from infra.append_only import PURGE
from infra.clock import Clock
from infra.db import WRITE_INTENT, Database, wrote
from infra.outbox import BatchHandler, Dispatcher, OutboxEvent
from infra.pubsub import Hub, Listener
from migrations.metadata import target_metadata
from partners.models import User
from schema.context import Services
from schema.root import build_schema

# How long the wipe waits for a table lock before it lets go of those it holds and starts
# again, and for how long in all (a transaction a test left open would block it for ever).
WIPE_LOCK_WAIT = "100ms"
WIPE_WITHIN = 30.0


@dataclass
class GQL:
    """A GraphQL-over-HTTP client bound to the app under test."""

    client: httpx.AsyncClient
    settings: Settings
    clock: Clock

    async def post(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        as_user: User | None = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        hdrs = {"content-type": "application/json", **(headers or {})}
        if as_user is not None:
            token = self.token(as_user)
        if token is not None:
            hdrs["authorization"] = f"Bearer {token}"
        body: dict[str, Any] = {"query": query}
        if variables is not None:
            body["variables"] = variables
        return await self.client.post("/graphql", json=body, headers=hdrs)

    async def __call__(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        as_user: User | None = None,
        token: str | None = None,
    ) -> dict[str, Any]:
        response = await self.post(query, variables, as_user=as_user, token=token)
        assert response.status_code == 200, response.text
        payload: dict[str, Any] = response.json()
        return payload

    async def data(
        self, query: str, variables: dict[str, Any] | None = None, *, as_user: User | None = None
    ) -> dict[str, Any]:
        """The data of a request that must not fail."""
        payload = await self(query, variables, as_user=as_user)
        assert "errors" not in payload, payload
        result: dict[str, Any] = payload["data"]
        return result

    def token(self, user: User, ttl: timedelta = timedelta(hours=1)) -> str:
        return issue_token(self.settings.jwt, user, ttl=ttl, now=self.clock.now())


def error_codes(payload: dict[str, Any]) -> list[str]:
    return [e.get("extensions", {}).get("code") for e in payload.get("errors", [])]


@functools.cache
def _graphql_schema() -> GraphQLSchema:
    return build_schema()._schema


def names_input_field(mutation: str, field: str | None) -> bool:
    """Whether a userError's ``field`` (camelCase, dotted, list items by index) names an
    argument of ``mutation`` or a field within one; a first name that is no argument is
    looked up in its ``input``. None (the request as a whole) names nothing wrongly."""
    if field is None:
        return True
    mutation_type = _graphql_schema().mutation_type
    assert mutation_type is not None
    names: dict[str, Any] = {n: a.type for n, a in mutation_type.fields[mutation].args.items()}
    parts = field.split(".")
    if parts[0] not in names and "input" in names:
        parts.insert(0, "input")
    kind: Any = None
    for part in parts:
        if kind is not None:
            kind = get_nullable_type(kind)
            if isinstance(kind, GraphQLList):
                if not part.isdigit():
                    return False
                kind = kind.of_type
                continue
            if not isinstance(kind, GraphQLInputObjectType):
                return False
            names = {n: f.type for n, f in kind.fields.items()}
        if part not in names:
            return False
        kind = names[part]
    return True


async def multipart(
    gql: GQL,
    query: str,
    variables: dict[str, Any],
    files: dict[str, tuple[str, bytes, str]],
    *,
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """A GraphQL multipart request: ``files`` maps a variable path (e.g.
    'variables.input.file') to (filename, bytes, content type)."""
    keys = {str(i): path for i, path in enumerate(files)}
    form = {
        "operations": json.dumps({"query": query, "variables": variables}),
        "map": json.dumps({k: [p] for k, p in keys.items()}),
    }
    upload = {k: files[p] for k, p in keys.items()}
    hdrs = dict(headers or {})
    if token is not None:
        hdrs["authorization"] = f"Bearer {token}"
    return await gql.client.post("/graphql", data=form, files=upload, headers=hdrs)


# The counting blocks open in this context: a task (and the greenlet SQLAlchemy runs a
# statement in, and a thread asyncio.to_thread starts) sees those open where it was
# started, so the app's background loops, started with the app, see none.
_COUNTING: contextvars.ContextVar[tuple[object, ...]] = contextvars.ContextVar(
    "counting", default=()
)


@contextlib.contextmanager
def _counting() -> Iterator[Callable[[], bool]]:
    """A block whose own work is counted: the returned check holds for code run on its
    behalf (in it, or in a task it started), not for the app's background work."""
    block = object()
    reset = _COUNTING.set((*_COUNTING.get(), block))
    try:
        yield lambda: block in _COUNTING.get()
    finally:
        _COUNTING.reset(reset)


@contextlib.contextmanager
def sql_statements(db: Database) -> Iterator[list[str]]:
    """The SQL statements the block's own work sends the database, as sent. Not the
    app's background loops' (the outbox dispatcher's poll, the clock jobs'): they run
    whenever they are due, and a count that took them in would depend on timing."""
    seen: list[str] = []
    with _counting() as ours:

        def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            if ours():
                seen.append(statement)

        event.listen(db.engine.sync_engine, "before_cursor_execute", record)
        try:
            yield seen
        finally:
            event.remove(db.engine.sync_engine, "before_cursor_execute", record)


@contextlib.contextmanager
def redis_commands() -> Iterator[list[str]]:
    """The names of the Redis commands the block's own work sends (any client of this
    process; pipelined ones too), upper case. Not the app's background loops', nor other
    processes': the server's INFO commandstats counts every client of a shared Redis (the
    other pytest-xdist worker's, another test run's)."""
    sent: list[str] = []
    original = AbstractConnection.pack_command
    with _counting() as ours:

        def pack_command(connection: AbstractConnection, *args: Any) -> list[bytes]:
            if ours():
                name = args[0].decode() if isinstance(args[0], bytes) else str(args[0])
                sent.append(name.split()[0].upper())
            return original(connection, *args)

        AbstractConnection.pack_command = pack_command  # type: ignore[method-assign]
        try:
            yield sent
        finally:
            AbstractConnection.pack_command = original  # type: ignore[method-assign]


async def post_as(http: httpx.AsyncClient, token: str, query: str, variables: Any) -> Any:
    """A GraphQL POST to a server of the test's own (an API process), as ``token``'s
    bearer: the JSON answer, whatever its status."""
    response = await http.post(
        "/graphql", json={"query": query, "variables": variables},
        headers={"authorization": f"Bearer {token}"},
    )  # fmt: skip
    return response.json()


async def no_write_transaction_open(settings: Settings) -> bool:
    """Nobody holds a write transaction open on the test's database: SQLite's write lock is
    free (taken and given back, without waiting), no PostgreSQL session (but this check's)
    sits idle in a transaction. For a test that killed a writer: it left no lock behind."""
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        assert url.database is not None
        connection = sqlite3.connect(url.database, timeout=0)
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("ROLLBACK")
            return True
        except sqlite3.OperationalError:
            return False
        finally:
            connection.close()
    idle = await pg_value(
        settings.database_url,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()",
    )
    return int(idle) == 0


async def pg_value(database_url: str, query: str, *args: Any) -> Any:
    """One value read on a PostgreSQL connection of its own, outside the app's pool (what
    pg_stat_activity shows is a snapshot per transaction: a fresh one each time)."""
    url = make_url(database_url)
    pg = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, password=url.password,
        database=url.database,
    )  # fmt: skip
    try:
        return await pg.fetchval(query, *args)
    finally:
        await pg.close()


async def count_rows(db: Database, model: Any) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


SHUTDOWN_WITHIN = 30.0  # a bound on a hang, not a measure of speed


@asynccontextmanager
async def live_server(app: Starlette) -> AsyncIterator[str]:
    """Serve an already started app on a free loopback port (real uvicorn, real sockets)."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, lifespan="off", log_level="warning",
        ws_per_message_deflate=False,
    )  # fmt: skip
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await _shut_down(task)


async def _shut_down(serving: asyncio.Task[None]) -> None:
    """uvicorn's shutdown waits, without a bound, for every connection's task to end: a
    subscription that does not end when its socket closes would hang the test until the
    suite's timeout. Fail instead, naming what still runs."""
    try:
        async with asyncio.timeout(SHUTDOWN_WITHIN):
            await asyncio.shield(serving)
    except TimeoutError as hung:
        stuck = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        shown = "\n".join(_awaiting(task) for task in stuck)
        serving.cancel()
        with contextlib.suppress(BaseException):
            async with asyncio.timeout(5):
                await serving
        # Not ``from None``: what the test raised, if anything (often why the shutdown
        # hangs), stays in the report as the context.
        raise AssertionError(f"the server did not shut down; still running:\n{shown}") from hung


def _awaiting(task: asyncio.Task[Any]) -> str:
    """Where a task waits: its chain of awaited coroutines, outermost first (a task's own
    stack shows only its first frame)."""
    lines = [task.get_name()]
    awaited: Any = task.get_coro()
    while awaited is not None:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "ag_frame", None)
        if frame is not None:
            lines.append(f"  {frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "ag_await", None)
    return "\n".join(lines)


class WSClient:
    """A real websocket GraphQL client (graphql-transport-ws, or the legacy graphql-ws)."""

    def __init__(self, ws: Any, protocol: str) -> None:
        self.ws = ws
        self.protocol = protocol
        self._ids = 0

    async def subscribe(self, query: str, variables: dict[str, Any]) -> str:
        self._ids += 1
        op_id = str(self._ids)
        kind = "subscribe" if self.protocol == "graphql-transport-ws" else "start"
        await self.ws.send(
            json.dumps(
                {"id": op_id, "type": kind, "payload": {"query": query, "variables": variables}}
            )
        )
        return op_id

    async def receive(self) -> dict[str, Any]:
        """The next protocol message (keep-alives skipped); a hang fails after 15 s."""
        while True:
            message: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), 15))
            if message.get("type") in ("ka", "ping", "pong"):
                continue
            return message

    async def data(self) -> dict[str, Any]:
        """The next `next`/`data` message's data (fails on anything else)."""
        message = await self.receive()
        assert message["type"] in ("next", "data"), message
        assert "errors" not in message["payload"], message
        result: dict[str, Any] = message["payload"]["data"]
        return result


@asynccontextmanager
async def ws_client(
    address: str, token: str | None, protocol: str = "graphql-transport-ws"
) -> AsyncIterator[WSClient]:
    async with websockets.connect(
        f"ws://{address}/graphql", subprotocols=[protocol], compression=None, max_size=None
    ) as ws:
        init = "connection_init"
        await ws.send(
            json.dumps({"type": init, "payload": {"Authorization": token} if token else {}})
        )
        client = WSClient(ws, protocol)
        ack = await client.receive()
        assert ack["type"] == "connection_ack", ack
        yield client


# Dates the demo tests pin the clock to: early, mid and late in months of each length, both
# sides of month boundaries (a 28-day February, a leap February, a year end), the day the
# earnings demo test was written and the day it failed.
DEMO_DATES = (
    datetime(2026, 11, 25, 9, 0, tzinfo=UTC),
    datetime(2026, 12, 4, 2, 0, tzinfo=UTC),
    datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC),
    datetime(2027, 1, 1, 0, 0, tzinfo=UTC),
    datetime(2027, 1, 10, 12, 0, tzinfo=UTC),
    datetime(2027, 2, 28, 23, 59, 59, tzinfo=UTC),
    datetime(2027, 3, 1, 0, 0, tzinfo=UTC),
    datetime(2027, 3, 5, 12, 0, tzinfo=UTC),
    datetime(2027, 3, 15, 12, 0, tzinfo=UTC),
    datetime(2027, 4, 30, 18, 0, tzinfo=UTC),
    datetime(2028, 2, 29, 12, 0, tzinfo=UTC),
)


async def listening(services: Services, channel: str, *, count: int = 1) -> None:
    """Wait until ``count`` subscribers listen on a Redis channel (so nothing published from
    now on can be missed)."""

    async def subscribed() -> bool:
        redis = services.redis
        if isinstance(redis, RedisCluster):  # sharded: ask the node that owns the channel
            node = redis.get_node_from_key(channel)
            [(_, listeners)] = await redis.pubsub_shardnumsub(channel, target_nodes=node)
        else:
            [(_, listeners)] = await redis.pubsub_numsub(channel)
        return int(listeners) >= count

    await eventually(subscribed, within=15)


async def drop_pubsub(services: Services, hub: Hub) -> None:
    """Cut ``hub``'s pub/sub connections from the server's side, as a Redis fault would.
    On a Redis of the run's own (the embedded one, on a unix socket: every client there is
    this worker's; the worker's local cluster) every pub/sub client goes. On a shared one
    (CHANNELBOARD_TEST_REDIS_URL: the other xdist worker and other runs use it too) only
    the hub's own, by their address: a kill of every pub/sub client there reconnected the
    other worker's Hub mid-test, dropping its read caches and its listeners' notices."""
    redis = services.redis
    if isinstance(redis, RedisCluster):
        await redis.execute_command(
            "CLIENT", "KILL", "TYPE", "pubsub", target_nodes=RedisCluster.ALL_NODES
        )
        return
    if redis.get_connection_kwargs().get("path"):
        await redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        return
    addresses = []
    for pubsub in hub._pubsubs():  # noqa: SLF001
        writer = getattr(pubsub.connection, "_writer", None)
        host, port, *_ = writer.get_extra_info("sockname") if writer else (None, None)
        if host is not None:
            addresses.append(f"{host}:{port}")
    assert addresses, "the hub holds no pub/sub connection to cut"
    for address in addresses:
        await redis.execute_command("CLIENT", "KILL", "ADDR", address)


H = TypeVar("H", bound=BatchHandler)
_BATCH_HANDLERS: weakref.WeakKeyDictionary[Dispatcher, dict[str, BatchHandler]] = (
    weakref.WeakKeyDictionary()
)


def batch_handler_of(
    services: Services, event_types: list[str], name: str, make: Callable[[], H]
) -> H:
    """The test's batch handler ``name`` on the app's dispatcher: made and registered the
    first time an app is seen, the same one after (a dispatcher cannot unregister, and the
    app is shared by tests). Keyed by the dispatcher itself: an id could be reused by the
    next app."""
    registered = _BATCH_HANDLERS.setdefault(services.outbox, {})
    if name not in registered:
        registered[name] = make()
        services.outbox.register_batch(event_types, registered[name])
    return cast(H, registered[name])


class ToldProbe(Listener):
    """A listener that notes, for each None it is offered, whether its channel was
    confirmed by Redis then (not awaited by the Hub)."""

    def __init__(self, hub: Hub, channel: str) -> None:
        super().__init__(channel, maxsize=16)
        self.hub = hub
        self.told: list[bool] = []

    def offer(self, message: bytes | None) -> None:
        if message is None:
            self.told.append(self.channel not in self.hub._awaiting)  # noqa: SLF001
        super().offer(message)


async def eventually(check: Callable[[], Awaitable[Any]], *, within: float = 3.0) -> None:
    """Poll ``check`` (an async function returning truthy) until it holds, failing after
    ``within`` seconds (well under the read caches' 10 s TTL by default, so passing means a
    change was heard, not timed out)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        if await check():
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("not within the time")
        await asyncio.sleep(0.05)


def make_token(user: User | None, **overrides: Any) -> str:
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": str(user.id) if user else "00000000-0000-7000-8000-000000000000",
        "iss": "channelboard-dev",
        "aud": "channelboard",
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(hours=1)).timestamp()),
    }
    secret = overrides.pop("secret", DEVELOPMENT_SECRET)
    claims.update(overrides)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, secret, "HS256")


async def close_frame(ws: Any) -> tuple[int, str] | None:
    """The code and reason the server closes ``ws`` with (messages before it are skipped),
    None if it dropped the connection without a close frame."""
    try:
        async with asyncio.timeout(15):  # a safety net for a broken build, not a measurement
            while True:
                await ws.recv()
    except websockets.ConnectionClosed as closed:
        return (closed.rcvd.code, closed.rcvd.reason) if closed.rcvd else None


async def close_code(ws: Any) -> int | None:
    frame = await close_frame(ws)
    return frame[0] if frame else None


PROBE = "subscription { noSuchField }"


async def answers(client: WSClient) -> bool:
    """The server still serves this socket: a round trip of the protocol."""
    if client.protocol == "graphql-transport-ws":
        await client.ws.send(json.dumps({"type": "ping"}))
        while json.loads(await asyncio.wait_for(client.ws.recv(), 15))["type"] != "pong":
            pass
        return True
    op_id = await client.subscribe(PROBE, {})  # invalid: answered at once with an error
    while True:  # the socket's other operations may push meanwhile (a board that moved)
        message = await client.receive()
        if message.get("id") == op_id:
            return bool(message["type"] == "error")


@asynccontextmanager
async def refused_inserts(
    db: Database, table: str, owner: uuid.UUID, *, column: str = "vendor_id"
) -> AsyncIterator[None]:
    """A fault in the database, not in our code: while open, every insert into ``table``
    of a row whose ``column`` is ``owner`` (a vendor, a contest) fails (a trigger on SQLite
    and PostgreSQL) with a data error (numeric overflow; not a constraint's, which jobs
    take for a concurrent write), as data a job cannot process would, every time."""
    name = f"cb_test_refuse_{table}"
    async with db.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.exec_driver_sql(
                f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'refused by the test' USING ERRCODE = '22003'; END $$"
            )
            await connection.exec_driver_sql(
                f"CREATE TRIGGER {name} BEFORE INSERT ON {table} FOR EACH ROW "
                f"WHEN (NEW.{column} = '{owner}'::uuid) EXECUTE FUNCTION {name}()"
            )
        else:  # SQLite keeps a UUID as 32 hex digits
            await connection.exec_driver_sql(
                f"CREATE TRIGGER {name} BEFORE INSERT ON {table} "
                f"WHEN NEW.{column} IN ('{owner.hex}', '{owner}') "
                "BEGIN SELECT abs(-9223372036854775807 - 1); END"  # "integer overflow"
            )
    try:
        yield
    finally:
        async with db.engine.begin() as connection:
            await connection.exec_driver_sql(f"DROP TRIGGER {name}" + (
                f" ON {table}" if connection.dialect.name == "postgresql" else ""
            ))  # fmt: skip
            if connection.dialect.name == "postgresql":
                await connection.exec_driver_sql(f"DROP FUNCTION {name}()")


class HeldStatement:
    """Holds a SQLite statement mid-execution: from now on, the first whose SQL matches
    ``pattern``, run in a transaction of ``engine`` (a writer's only, with
    ``writers_only``), stops inside its first step on aiosqlite's thread until
    ``release()``. The task awaiting it can then be cancelled mid-statement
    deterministically (no timing)."""

    def __init__(self, engine: AsyncEngine, pattern: str, *, writers_only: bool = False) -> None:
        self.engine = engine
        self.pattern = re.compile(pattern)
        self.writers_only = writers_only
        self._entered = threading.Event()
        self._released = threading.Event()
        self._fired = False
        event.listen(engine.sync_engine, "begin", self._on_begin)

    def _on_begin(self, connection: Connection) -> None:  # a transaction starts
        writer = connection.get_execution_options().get(WRITE_INTENT, False)
        trace = self._trace if writer or not self.writers_only else None
        adapted = connection.connection.dbapi_connection
        assert isinstance(adapted, AdaptedConnection)
        adapted.run_async(lambda driver: driver.set_trace_callback(trace))

    def _trace(self, sql: str) -> None:  # on the connection's thread
        if not self._fired and self.pattern.search(sql):
            self._fired = True
            self._entered.set()
            self._released.wait(timeout=120)

    async def entered(self) -> None:
        """Return once the statement is held (failing after a minute)."""
        assert await asyncio.to_thread(self._entered.wait, 60), "no statement was held"

    def release(self) -> None:
        """Let the held statement go on; hold no other."""
        self._released.set()
        if event.contains(self.engine.sync_engine, "begin", self._on_begin):
            event.remove(self.engine.sync_engine, "begin", self._on_begin)


async def recorded(db: Database, event_type: str) -> list[dict[str, Any]]:
    """The payloads of the outbox events of this type, in the order they were recorded."""
    async with db.session() as session:
        rows = await session.exec(
            select(OutboxEvent).where(OutboxEvent.type == event_type).order_by(col(OutboxEvent.id))
        )
        return [e.payload for e in rows]


@functools.cache
def _postgres_wipe(tables: tuple[str, ...]) -> TextClause:
    """Lock every table against writers, then delete every row, children first, in one
    statement (a DO block)."""
    names = ", ".join(f'"{name}"' for name in tables)
    deletes = " ".join(f'DELETE FROM "{name}";' for name in tables)
    return text(
        f"DO $$ BEGIN SET LOCAL lock_timeout = '{WIPE_LOCK_WAIT}'; "
        f"LOCK TABLE {names} IN EXCLUSIVE MODE; {deletes} END $$"
    )


def _sqlite_filled(tables: list[Table]) -> TextClause:
    """The names of the tables that hold a row, in one statement."""
    return text(
        " UNION ALL ".join(
            f"SELECT '{t.name}' WHERE EXISTS (SELECT 1 FROM \"{t.name}\")" for t in tables
        )
    )


async def wipe(services: Services) -> None:
    """Delete every row of every table, as the cleanup after each test does.

    The app's background work goes on meanwhile: the outbox dispatcher and the webhook
    worker are paused (a handler crediting a leftover event must not write between the
    deletes), but the clock jobs (the daily rule run's snapshots, the closers) and the
    activity flush are not. On PostgreSQL (READ COMMITTED) such a writer can insert a row
    after the wipe deleted that table and commit it before the wipe deletes the row's
    parent (a snapshot of a partner), which failed the wipe on the foreign key. So first
    the wipe locks every table against writers (EXCLUSIVE: reads go on), waiting for those
    at work to commit; lest it wait holding some tables while a writer waits for one of
    those, it gives up after ``WIPE_LOCK_WAIT`` and starts again. On SQLite writers take
    turns already (BEGIN IMMEDIATE)."""
    tables = list(reversed(target_metadata().sorted_tables))
    postgres = services.db.engine.dialect.name == "postgresql"
    deadline = asyncio.get_running_loop().time() + WIPE_WITHIN
    async with services.outbox.paused(), services.webhooks.paused():
        while True:
            try:
                async with services.db.transaction() as session:
                    if postgres:
                        # One round trip: a statement per table took 50 ms a test.
                        await session.execute(_postgres_wipe(tuple(t.name for t in tables)))
                    else:  # only the tables with rows: a statement each is a thread hop
                        filled = set((await session.execute(_sqlite_filled(tables))).scalars())
                        for table in (t for t in tables if t.name in filled):
                            await session.execute(delete(table), execution_options={PURGE: True})
                    wrote(session, *(t.name for t in tables))  # every read cache starts over
                return
            except DBAPIError as exc:
                lock_not_available = getattr(exc.orig, "sqlstate", None) == "55P03"
                if not lock_not_available or asyncio.get_running_loop().time() > deadline:
                    raise
