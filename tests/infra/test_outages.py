"""An unreachable database is an outage, not a bug: ``infra.outages.is_unavailable`` says
so for a refused connection and a connection found dead (tests/infra/test_db_liveness.py),
and GraphQL answers it SERVICE_UNAVAILABLE with a retry hint; a bad statement stays a bug."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from graphql import GraphQLError
from redis.exceptions import ReadOnlyError
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from infra.db import Database, Waits
from infra.outages import Outage, database_unreachable, is_unavailable, waiting_out
from infra.outbox import is_transient
from schema.extensions import MaskUnexpectedErrors


async def _error_of(db: Database, sql: str) -> BaseException:
    try:
        async with db.session() as session:
            await session.execute(text(sql))
    except Exception as exc:  # noqa: BLE001 - what it raises is what is classified
        return exc
    pytest.fail("the statement ran")


async def test_a_refused_connection_is_an_outage_and_answered_as_one() -> None:
    nowhere = Database("postgresql+asyncpg://nobody@127.0.0.1:1/x")
    try:
        error = await _error_of(nowhere, "SELECT 1")
    finally:
        await nowhere.dispose()
    assert database_unreachable(error)
    assert is_unavailable(error)
    answered = MaskUnexpectedErrors().anonymise_error(GraphQLError("x", original_error=error))
    assert answered.extensions == {"code": "SERVICE_UNAVAILABLE", "retryAfterSeconds": 2}


async def test_a_bad_statement_is_a_bug(db: Database) -> None:
    error = await _error_of(db, "SELECT * FROM no_such_table")
    assert isinstance(error, DBAPIError)
    assert not is_unavailable(error)
    answered = MaskUnexpectedErrors().anonymise_error(GraphQLError("x", original_error=error))
    assert answered.extensions == {"code": "INTERNAL_SERVER_ERROR"}


def test_a_redis_replica_refusing_writes_is_an_outage_for_the_dispatcher() -> None:
    """During a failover behind one address (a managed primary endpoint, Sentinel) writes
    reach the demoted primary and answer READONLY. It is Redis out of reach, not the
    event's fault: the pass ends uncharged. Before, the dispatcher charged the event an
    attempt each pass, and a failover of minutes dead-lettered the credits."""
    refused = ReadOnlyError("You can't write against a read only replica.")
    assert is_transient(refused)
    wrapped = RuntimeError("crediting failed")
    wrapped.__cause__ = refused
    assert is_transient(wrapped)
    assert not is_transient(RuntimeError("a bug"))


class _ServerError(Exception):
    """As asyncpg raises a server's error: its SQLSTATE as ``sqlstate``."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("sqlstate", "outage"),
    [
        ("57P01", True),  # admin_shutdown
        ("57P03", True),  # cannot_connect_now: starting up, shutting down, in recovery
        ("08006", True),  # connection_failure
        ("08001", True),  # the client could not establish the connection
        ("08P01", False),  # protocol_violation: a driver's bug, not an outage
        ("08007", False),  # transaction_resolution_unknown: not to be retried blindly
        ("40001", False),  # serialization_failure: the dispatcher's own retry, not an outage
    ],
)
def test_which_server_errors_are_the_database_out_of_reach(sqlstate: str, outage: bool) -> None:
    """The connection exceptions of class 08 were all outages at first, a protocol
    violation too (answered SERVICE_UNAVAILABLE, and retried by the dispatcher forever)."""
    server = _ServerError(sqlstate)
    error = DBAPIError("SELECT 1", {}, server)
    error.__cause__ = server  # as SQLAlchemy raises it: from the driver's error
    assert database_unreachable(error) is outage


async def test_waiting_out_runs_a_step_again_through_an_outage_and_says_so_once() -> None:
    """A step that meets a database out of reach (a real refused connection) three times,
    then goes through: it is run again until it does, and the outage is told once when
    met and once when over. A bug is not waited out."""
    nowhere = Database("postgresql+asyncpg://nobody@127.0.0.1:1/x")
    refused = await _error_of(nowhere, "SELECT 1")
    await nowhere.dispose()
    told: list[str] = []
    outage = Outage(told.append)
    calls = 0

    async def step() -> str:
        nonlocal calls
        calls += 1
        if calls <= 3:
            raise refused
        return "done"

    assert await waiting_out(step, outage, backoff=(0.001, 0.002)) == "done"
    assert calls == 4
    assert len(told) == 2, told
    assert told[0].startswith("the database is out of reach")
    assert told[1].startswith("the database is back after")

    async def bug() -> None:
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        await waiting_out(bug, outage)
    assert len(told) == 2


async def test_waiting_out_runs_a_step_again_after_contention_and_says_so(tmp_path: Path) -> None:
    """A step whose transaction the database gave up on for contention (a real "database
    is locked": another connection holds SQLite's write lock past the busy timeout) is run
    again until it goes through, told as contention, not as an outage (it raised before)."""
    path = tmp_path / "contended.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (n INTEGER)")
    holder.execute("BEGIN IMMEDIATE")  # SQLite's write lock, held until the step lets go
    db = Database(f"sqlite+aiosqlite:///{path}", waits=Waits(sqlite_busy_seconds=0.05))
    told: list[str] = []
    calls = 0

    async def step() -> int:
        nonlocal calls
        calls += 1
        if calls == 3:
            holder.execute("COMMIT")
        async with db.transaction() as session:
            await session.execute(text("INSERT INTO t VALUES (1)"))
        return calls

    try:
        assert await waiting_out(step, Outage(told.append), backoff=(0.001, 0.002)) == 3
        async with db.session() as session:
            assert (await session.execute(text("SELECT count(*) FROM t"))).scalar_one() == 1
    finally:
        holder.close()
        await db.dispose()
    assert len(told) == 2, told
    assert told[0].startswith("the database ended a transaction for contention (database is")
    assert told[1].startswith("the work went through after")


async def _locked_error(path: Path) -> BaseException:
    """A real "database is locked": SQLite's write lock held past the busy timeout."""
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE IF NOT EXISTS t (n INTEGER)")
    holder.execute("BEGIN IMMEDIATE")
    db = Database(f"sqlite+aiosqlite:///{path}", waits=Waits(sqlite_busy_seconds=0.05))
    try:
        async with db.transaction() as session:
            await session.execute(text("INSERT INTO t VALUES (1)"))
    except Exception as exc:  # noqa: BLE001 - what it raises is what is classified
        return exc
    finally:
        holder.close()
        await db.dispose()
    pytest.fail("the write went through")


async def test_waiting_out_tells_each_kind_of_failure_and_gives_up_on_lasting_contention(
    tmp_path: Path,
) -> None:
    """Contention, then the database out of reach, then through: each told when it starts
    (the outage was not told before: the episode had been told as contention), one line
    when over. Contention that lasts (a statement that always outlasts a timeout) is run
    five times, then propagates (it was run for ever)."""
    locked = await _locked_error(tmp_path / "locked.db")
    nowhere = Database("postgresql+asyncpg://nobody@127.0.0.1:1/x")
    refused = await _error_of(nowhere, "SELECT 1")
    await nowhere.dispose()
    told: list[str] = []
    failures = iter([locked, locked, refused, refused])

    async def step() -> str:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return "done"

    assert await waiting_out(step, Outage(told.append), backoff=(0.001, 0.002)) == "done"
    assert [line.split(" (")[0] for line in told] == [
        "the database ended a transaction for contention",
        "the database is out of reach",
        "the database is back after 0 s; carrying on",
    ], told

    runs = 0

    async def always_contended() -> None:
        nonlocal runs
        runs += 1
        raise locked

    with pytest.raises(type(locked)):
        await waiting_out(always_contended, Outage(told.append), backoff=(0.001, 0.002))
    assert runs == 5
