"""The upgrade as a real process (``channelboard migrate``, or ``api.migrations.upgrade``
in a process of its own) SIGKILLed midway, then run again; and several processes that
migrate one database at once.

A kill comes at a chosen point, found without sleeping: the process kills itself (SIGKILL,
no handler runs, nothing is flushed) just before its Nth SQL statement, or just before the
statement after a step it runs outside the migration's transaction. After every kill the
database's schema is exactly that of its recorded revision (each migration commits whole,
with its stamp), the next run completes at head with the schema the models describe, and
rows written before the upgrade are all there."""

from __future__ import annotations

import asyncio
import fcntl
import itertools
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from api import migrations
from api.settings import Settings
from infra.db import Database, create_engine
from tests.migrations.test_migrations import _drift, _old_tenant
from tests.processes import cli_process, python_process

MIGRATIONS_VERSIONS = Path(migrations.MIGRATIONS_DIR) / "versions"

# Upgrade URL to head and SIGKILL itself just before statement number BEFORE (0: never),
# or just before the statement after its OUTSIDE-th statement run outside a transaction
# (Alembic's autocommit_block; 0: never).
_KILLED_UPGRADE = """
import asyncio, os, signal, sys
from sqlalchemy import event
from sqlalchemy.engine import Engine
from api import migrations

url, before, outside = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
seen = {"statements": 0, "outside": 0, "kill": False}

@event.listens_for(Engine, "before_cursor_execute")
def _before(conn, cursor, statement, parameters, context, executemany):
    seen["statements"] += 1
    if seen["kill"] or seen["statements"] == before:
        os.kill(os.getpid(), signal.SIGKILL)
    if conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
        seen["outside"] += 1
        seen["kill"] = seen["outside"] == outside

asyncio.run(migrations.upgrade(url))
print("upgraded")
"""

KILLED = -9


async def _upgrade_killed(
    settings: Settings, url: str, *, before: int = 0, outside: int = 0
) -> tuple[int, str]:
    """Run the upgrade in a process of its own, to be killed as ``_KILLED_UPGRADE`` says:
    its exit status (KILLED when it was) and its output."""
    async with python_process(
        settings, _KILLED_UPGRADE, url, str(before), str(outside), DATABASE_URL=url
    ) as process:
        assert process.stdout is not None
        output = (await process.stdout.read()).decode()
        return await process.wait(), output


def _shape_of(connection: Connection) -> list[Any]:
    """The schema, as comparable data: tables with their columns, keys, indexes and
    checks; triggers; on PostgreSQL also functions and any invalid index."""
    inspector = inspect(connection)
    shape: list[Any] = []
    for table in sorted(inspector.get_table_names()):
        if table == "alembic_version":
            continue
        shape.append((
            table,
            [(c["name"], str(c["type"]), c["nullable"], str(c.get("default")))
             for c in inspector.get_columns(table)],
            sorted((i["name"], tuple(i["column_names"]), i["unique"])
                   for i in inspector.get_indexes(table)),
            sorted(str(sorted(u.items())) for u in inspector.get_unique_constraints(table)),
            sorted(str(sorted(f.items())) for f in inspector.get_foreign_keys(table)),
            sorted(str(sorted(c.items())) for c in inspector.get_check_constraints(table)),
            str(inspector.get_pk_constraint(table)),
        ))  # fmt: skip
    if connection.dialect.name == "sqlite":
        triggers = "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger'"
        shape.append(sorted(tuple(row) for row in connection.exec_driver_sql(triggers)))
        return shape
    for query in (
        "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal",
        "SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid",
        "SELECT proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
        " WHERE nspname = current_schema()",
    ):
        shape.append(sorted(connection.exec_driver_sql(query).scalars()))
    return shape


async def _shape(url: str) -> tuple[str | None, list[Any]]:
    """The database's recorded revision and its schema's shape."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(
                lambda sync: (migrations.current_revision(sync), _shape_of(sync))
            )
    finally:
        await engine.dispose()


class _Reference:
    """A database upgraded cleanly, revision by revision, to compare a killed one with:
    the shape a revision's schema has (revisions asked for in history order)."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def shape_at(self, revision: str | None) -> list[Any]:
        at, shape = await _shape(self.url)
        if at != revision:
            assert revision is not None, "a killed upgrade went back to no revision"
            await migrations.upgrade(self.url, revision)
            at, shape = await _shape(self.url)
        assert at == revision
        return shape


Rows = dict[str, list[tuple[Any, ...]]]  # each table's rows, in a fixed order


async def _rows(url: str, columns_of: dict[str, list[str]] | None = None) -> Rows:
    """The rows of every table that has any (``columns_of``: of those tables, with only
    those of their columns that are still there), each as a tuple of its columns."""
    engine = create_engine(url)

    def read(sync: Connection) -> Rows:
        inspector = inspect(sync)
        found: Rows = {}
        for table in columns_of or inspector.get_table_names():
            if table == "alembic_version":
                continue
            present = [c["name"] for c in inspector.get_columns(table)]
            columns = [c for c in (columns_of or {}).get(table, present) if c in present]
            names = ", ".join(f'"{c}"' for c in columns)
            rows = sync.exec_driver_sql(f'SELECT {names} FROM "{table}"').all()
            if rows or columns_of:
                found[table] = sorted((tuple(r) for r in rows), key=repr)
        return found

    try:
        async with engine.connect() as connection:
            return await connection.run_sync(read)
    finally:
        await engine.dispose()


async def _columns(url: str, tables: list[str]) -> dict[str, list[str]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(
                lambda sync: {t: [c["name"] for c in inspect(sync).get_columns(t)] for t in tables}
            )
    finally:
        await engine.dispose()


async def _seed(url: str, start: str) -> tuple[dict[str, list[str]], Rows]:
    """Nothing for an upgrade from an empty database (``start`` "base"); else the database
    at ``start`` with a vendor, a partner and two users written as that revision's schema
    has them: the columns of each table that has rows, and its rows."""
    if start == "base":
        return {}, {}
    await migrations.upgrade(url, start)
    db = Database(url)
    try:
        async with db.transaction() as session:
            await _old_tenant(session, datetime(2026, 11, 30, 9, tzinfo=UTC))
    finally:
        await db.dispose()
    rows = await _rows(url)
    return await _columns(url, list(rows)), rows


async def _assert_at_head_with(url: str, seeded: tuple[dict[str, list[str]], Rows]) -> None:
    """At head, the schema the models describe, and the rows written before the upgrade
    (in the columns they were written with) all there, unchanged."""
    assert await migrations.database_revision(url) == migrations.head_revision()
    assert await _drift(url) == []
    columns, rows = seeded
    assert await _rows(url, columns) == rows


def test_migrations_leave_their_transaction_only_through_steps_that_run_again() -> None:
    """A step run outside a migration's transaction commits before the revision's stamp:
    done plainly, a kill in between left the database one revision short, and every later
    upgrade failed on the step's own leftovers. ``migrations.outside`` has the steps that
    can run again; no migration calls autocommit_block itself."""
    plain = [
        path.name
        for path in sorted(MIGRATIONS_VERSIONS.glob("*.py"))
        if "autocommit_block" in path.read_text()
    ]
    assert plain == []


@pytest.mark.slow
@pytest.mark.parametrize("start", ["base", "0030_decision_partner"])
async def test_a_kill_after_a_step_outside_a_transaction_is_finished_by_the_next_upgrade(
    settings: Settings, scratch_url: str, start: str
) -> None:
    """Killed just after each step a migration runs outside its transaction (0038's index,
    built CONCURRENTLY on PostgreSQL), in turn: the next upgrade finishes the migration.
    It failed on "index already exists" / "relation already exists", for ever."""
    seeded = await _seed(scratch_url, start)
    for outside in itertools.count(1):
        assert outside < 20, "the upgrade never completed"
        status, output = await _upgrade_killed(settings, scratch_url, outside=outside)
        if status == 0:
            break
        assert status == KILLED, output
    assert outside > 1, "no step ran outside a transaction"
    await _assert_at_head_with(scratch_url, seeded)


@pytest.mark.slow
@pytest.mark.timeout(1200)  # a bound on a hang: some dozens of processes, a few s each
@pytest.mark.parametrize("start", ["base", "0006_contests"])
async def test_killed_at_statement_after_statement_the_upgrade_resumes_truthfully(
    settings: Settings,
    new_scratch_database: Callable[[], Awaitable[str]],
    start: str,
) -> None:
    """The upgrade killed again and again, each run some dozens of statements after its
    start (inside migrations, between them, in batch table copies on SQLite), each run
    resuming where the last stopped: after every kill the schema is exactly that of the
    recorded revision; at the end the database is at head, as the models describe it,
    with the rows written before."""
    url, reference = await new_scratch_database(), _Reference(await new_scratch_database())
    seeded = await _seed(url, start)
    await _seed(reference.url, start)
    # A kill inside a migration undoes it: one longer than the runs reach (a hundred
    # statements on SQLite, the whole history before 0038 on PostgreSQL) is reached by
    # runs that go further each time the revision stays where it was.
    kills, stuck, at = 0, 0, start if start != "base" else None
    for before in itertools.cycle([41, 67, 89]):
        assert kills < 100, "the upgrade never completed"
        status, output = await _upgrade_killed(settings, url, before=before + 60 * stuck)
        if status == 0:
            break
        assert status == KILLED, output
        kills += 1
        revision, shape = await _shape(url)
        assert shape == await reference.shape_at(revision), f"kill {kills}: not {revision}"
        stuck, at = (stuck + 1 if revision == at else 0), revision
    assert kills > 3
    await _assert_at_head_with(url, seeded)


async def _hold_migration_lock(url: str) -> Callable[[], Awaitable[None]]:
    """Take the migration lock of the database at ``url`` as a migrating process does;
    the function that releases it."""
    path = migrations.lock_path(url)
    if path is not None:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(descriptor, fcntl.LOCK_EX)

        async def release_file() -> None:
            os.close(descriptor)

        return release_file
    engine = create_engine(url)
    connection = await engine.connect()
    await connection.execute(
        text("SELECT pg_advisory_lock(:namespace, 0)"), {"namespace": migrations.LOCK_NAMESPACE}
    )
    await connection.commit()

    async def release_session() -> None:
        await connection.close()
        await engine.dispose()

    return release_session


@pytest.mark.slow
@pytest.mark.parametrize("start", ["base", "0038_idempotency_key_expiry"])
async def test_processes_that_migrate_at_once_take_turns(
    settings: Settings, scratch_url: str, start: str
) -> None:
    """Three ``channelboard migrate`` started while a fourth migration holds the lock: each
    says it waits, and once the lock is free each completes (the later ones find the work
    done). Before, they all ran the same migrations at once, and the losers failed with a
    driver's error on the winner's tables."""
    seeded = await _seed(scratch_url, start)
    release = await _hold_migration_lock(scratch_url)
    try:
        async with (
            cli_process(settings, "migrate", DATABASE_URL=scratch_url, LOG_LEVEL="info") as a,
            cli_process(settings, "migrate", DATABASE_URL=scratch_url, LOG_LEVEL="info") as b,
            cli_process(settings, "migrate", DATABASE_URL=scratch_url, LOG_LEVEL="info") as c,
        ):
            outputs = []
            for process in (a, b, c):
                assert process.stdout is not None
                seen = b""
                while migrations.WAITING.encode() not in seen:
                    line = await process.stdout.readline()
                    assert line, f"it did not wait: {seen.decode()}"
                    seen += line
                outputs.append(process.stdout)
            await release()
            release = None
            for process, stdout in zip((a, b, c), outputs, strict=True):
                rest = (await stdout.read()).decode()
                assert await process.wait() == 0, rest
                assert f"database migrated to {migrations.head_revision()}" in rest
    finally:
        if release is not None:
            await release()
    await _assert_at_head_with(scratch_url, seeded)


@pytest.mark.slow
@pytest.mark.parametrize("start", ["base", "0038_idempotency_key_expiry"])
async def test_processes_started_together_all_migrate(
    settings: Settings, scratch_url: str, start: str
) -> None:
    """Three ``channelboard migrate`` started together, nothing held: all three succeed,
    and the schema is the models'. (Whether they overlap is up to the machine; on an idle
    one, from an empty database, two of three failed before.)"""
    seeded = await _seed(scratch_url, start)
    async with (
        cli_process(settings, "migrate", DATABASE_URL=scratch_url) as a,
        cli_process(settings, "migrate", DATABASE_URL=scratch_url) as b,
        cli_process(settings, "migrate", DATABASE_URL=scratch_url) as c,
    ):
        outputs = await asyncio.gather(*(p.stdout.read() for p in (a, b, c) if p.stdout))
        statuses = [await p.wait() for p in (a, b, c)]
    assert statuses == [0, 0, 0], [o.decode()[-2000:] for o in outputs]
    await _assert_at_head_with(scratch_url, seeded)
