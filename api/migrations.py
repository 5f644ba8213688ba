"""Alembic, driven from code: `channelboard migrate`, the serve-time check, /readyz, tests.

Every upgrade and downgrade runs here, one at a time per database (``_one_at_a_time``):
processes that migrate at once (two servers started together on the embedded default, a
deploy's ``migrate`` run twice) take turns, and the later one finds the work done. Without
it both read the same revision and ran the same migration: the loser failed on the
winner's tables (a unique violation on PostgreSQL's catalog, "database is locked" or
"already exists" on SQLite) with a driver's traceback, mid-history."""

from __future__ import annotations

import asyncio
import fcntl
import itertools
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection

from infra.db import create_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

log = logging.getLogger(__name__)

# PostgreSQL's two-key advisory lock held while migrating: "migrations" (other users of
# advisory locks pick other first keys: signals.locks, earnings.booking).
LOCK_NAMESPACE = 0x4D49
_TRY_LOCK = text("SELECT pg_try_advisory_lock(:namespace, 0)")
# How often a waiting process asks for it again.
LOCK_POLL_SECONDS = 0.25
_UNLOCK = text("SELECT pg_advisory_unlock(:namespace, 0)")

WAITING = "another process is migrating this database: waiting for it to finish"


def alembic_config(url: str = "") -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url)
    config.set_main_option(
        "file_template",
        "%%(year)d-%%(month).2d-%%(day).2d-%%(hour).2d%%(minute).2d_%%(slug)s",
    )
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def lock_path(url: str) -> Path | None:
    """The file whose lock a migration of the SQLite database at ``url`` holds (next to
    it, as SQLite's own -wal and -shm files); None for another database, or an in-memory
    one (no other process can open it)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(f"{parsed.database}-migrate-lock")


@asynccontextmanager
async def _one_at_a_time(connection: AsyncConnection, url: str) -> AsyncIterator[None]:
    """Hold the database's migration lock for the block, waiting for it (saying so) while
    another process holds it (on PostgreSQL asking again every ``LOCK_POLL_SECONDS``). A
    lock its holder cannot leave behind: on PostgreSQL a session-level advisory lock (a
    kill ends the session, and the server releases it; a transaction-level one would not
    span the migrations, which commit midway: ``autocommit_block``), on SQLite an
    exclusive ``flock`` on a file next to the database (the kernel releases it when the
    process dies; the file stays, unlocked). The block starts outside any transaction, as
    Alembic expects a connection it is handed."""
    if connection.dialect.name == "postgresql":
        # Asked again and again, each time in a transaction of its own: a waiter blocked in
        # pg_advisory_lock keeps a snapshot open, which an index built CONCURRENTLY by the
        # holder waits for to end (the server reported a deadlock and failed the build).
        for attempt in itertools.count():
            held = (await connection.execute(_TRY_LOCK, {"namespace": LOCK_NAMESPACE})).scalar()
            await connection.commit()
            if held:
                break
            if attempt == 0:
                log.warning(WAITING)
            await asyncio.sleep(LOCK_POLL_SECONDS)
        yield
        # (After a failure, the engine's disposal ends the session, and the lock with it.)
        await connection.execute(_UNLOCK, {"namespace": LOCK_NAMESPACE})
        await connection.commit()
        return
    path = lock_path(url)
    if path is None:
        yield
        return
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning(WAITING)
            await asyncio.to_thread(fcntl.flock, descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # and with it the lock


async def _run(url: str, action: str, revision: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection, _one_at_a_time(connection, url):

            def run(sync_connection: Connection) -> None:
                config = alembic_config(url)
                config.attributes["connection"] = sync_connection
                if action == "upgrade":
                    command.upgrade(config, revision)
                else:
                    command.downgrade(config, revision)

            await connection.run_sync(run)
            await connection.commit()
    finally:
        await engine.dispose()


async def upgrade(url: str, revision: str = "head") -> None:
    await _run(url, "upgrade", revision)


async def downgrade(url: str, revision: str) -> None:
    await _run(url, "downgrade", revision)


async def database_revision(url: str) -> str | None:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(current_revision)
    finally:
        await engine.dispose()
