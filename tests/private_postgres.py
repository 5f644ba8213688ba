"""A PostgreSQL server of a test's own (``initdb`` in a temporary folder, ``pg_ctl`` on a
free port), for tests that stop, restart or break it: the shared server of the test run
must never be. Tests that ask for one (the ``private_postgres`` fixture) are skipped where
no PostgreSQL server binaries are installed."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.ports import free_port


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

    def stopped(self) -> None:
        """Stop the server (fast) and wait until it is down, whether or not a stop is under
        way already: ``pg_ctl stop`` fails on a server that a smart stop has just ended
        (no PID file, or its process gone before the signal), so its status decides."""
        try:
            self.pg_ctl("-m", "fast", "-w", "-t", "60", "stop")
        except subprocess.CalledProcessError:
            for _ in range(600):
                status = subprocess.run(
                    [*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.data), "status"],
                    timeout=30, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
                if status.returncode == 3:  # no server running
                    return
                time.sleep(0.1)
            raise


@contextmanager
def private_postgres_server() -> Iterator[PrivatePostgres]:
    """A started private server, stopped (immediate) and deleted after the block."""
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
