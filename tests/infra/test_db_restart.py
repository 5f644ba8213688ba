"""A PostgreSQL server of the test's own, stopped and started under a pool: while it
shuts down or starts up it refuses connections with SQLSTATE 57P03 ("the database system
is shutting down" / "... is starting up"), which is an outage (SERVICE_UNAVAILABLE, the
dispatcher's pass uncharged), not a bug; once it is back the same pool answers. Skipped
where no PostgreSQL server binaries are installed."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from graphql import GraphQLError
from sqlalchemy import text

from infra.db import Database
from infra.outages import is_unavailable
from infra.outbox import is_transient
from schema.extensions import MaskUnexpectedErrors
from tests.processes import free_port

pytestmark = pytest.mark.slow


class PrivatePostgres:
    def __init__(self, data: Path) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        initdb = found[-1] if found else shutil.which("initdb")
        if initdb is None:
            pytest.skip("no PostgreSQL server binaries (initdb) installed")
        self.bin = Path(initdb).parent
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # initdb refuses root: run the server as postgres
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root and there is no postgres user to run a server")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.data = data
        self.port = free_port()
        data.mkdir(mode=0o700)
        if self.as_user:
            shutil.chown(data, "postgres")
        self._run("initdb", "-D", str(data), "-U", "postgres", "--auth=trust")
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [*self.as_user, str(self.bin / tool), *args], check=True, timeout=120,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def pg_ctl(self, *args: str) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1"
        log = str(self.data / "log")
        self._run("pg_ctl", "-D", str(self.data), "-l", log, "-o", options, *args)


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    # Under /tmp, not pytest's tmp_path: the server's user must reach it (pytest's base
    # directory is private to the user running the tests).
    base = Path(tempfile.mkdtemp(prefix="channelboard-pg-"))
    try:
        os.chmod(base, 0o755)
        server = PrivatePostgres(base / "data")
        server.pg_ctl("-w", "start")
        try:
            yield server
        finally:
            subprocess.run(
                [*server.as_user, str(server.bin / "pg_ctl"), "-D", str(server.data), "-m",
                 "immediate", "-w", "stop"],
                timeout=60, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
    finally:
        shutil.rmtree(base, ignore_errors=True)


async def _select_one(db: Database) -> int:
    async with db.session() as session:
        return int((await session.execute(text("SELECT 1"))).scalar_one())


async def test_a_server_shutting_down_or_starting_is_an_outage_then_the_pool_recovers(
    private_postgres: PrivatePostgres,
) -> None:
    holder = Database(private_postgres.url)
    db = Database(private_postgres.url)
    try:
        assert await _select_one(db) == 1
        await db.dispose()  # new connections from here on
        async with holder.session() as session:
            await session.execute(text("SELECT 1"))  # a session the smart stop waits for
            private_postgres.pg_ctl("-m", "smart", "-W", "stop")
            error: BaseException | None = None
            try:
                await _select_one(db)
            except Exception as exc:  # noqa: BLE001 - what it raises is what is classified
                error = exc
            assert error is not None, "the server took a new connection while shutting down"
            assert "shutting down" in str(error)
            # Before, a plain DBAPIError: masked as INTERNAL_SERVER_ERROR with a traceback,
            # and charged to the dispatcher's events.
            assert is_unavailable(error)
            assert is_transient(error)
            answered = MaskUnexpectedErrors().anonymise_error(
                GraphQLError("x", original_error=error)
            )
            assert answered.extensions == {"code": "SERVICE_UNAVAILABLE", "retryAfterSeconds": 2}
        await holder.dispose()  # the last session gone: the server stops
        private_postgres.pg_ctl("-m", "fast", "-w", "-t", "60", "stop")  # wait for it
        private_postgres.pg_ctl("-w", "-t", "60", "start")
        assert await _select_one(db) == 1  # the same pool, once the server is back
    finally:
        await holder.dispose()
        await db.dispose()
