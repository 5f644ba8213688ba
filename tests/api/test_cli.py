"""The command line, run as a user runs it (subprocesses, real files, real servers)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jwt
import pytest

from api.settings import DEVELOPMENT_SECRET
from schema.root import build_schema
from tests.ports import free_port

pytestmark = pytest.mark.backend_free  # the same whatever backend the run uses

ROOT = Path(__file__).resolve().parents[2]


def run(
    args: list[str], env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api", *args],
        env={**os.environ, **env}, cwd=env.get("CWD", ROOT), capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("CHANNELBOARD_")
    }  # the CLI must work from its defaults
    env.update({"CHANNELBOARD_VAR_DIR": str(tmp_path / "var"), "CWD": str(tmp_path)})
    return env


def test_schema_graphql_is_current() -> None:
    committed = (ROOT / "schema.graphql").read_text()
    assert committed == build_schema().as_str() + "\n", (
        "schema.graphql is stale: run './dev export-schema'"
    )


@pytest.mark.slow
def test_a_command_on_a_database_not_there_to_use_names_the_remedy(
    cli_env: dict[str, str],
) -> None:
    """``token`` before ``migrate`` (a fresh clone), and a database that cannot be reached:
    one sentence naming the remedy, exit status 3, no traceback, no password shown."""
    unmigrated = run(["token", "admin@acme.example"], cli_env)
    assert unmigrated.returncode == 3, unmigrated.stdout + unmigrated.stderr
    assert "is not migrated (at no revision, this code needs" in unmigrated.stderr
    assert "run 'channelboard migrate'" in unmigrated.stderr
    assert "Traceback" not in unmigrated.stdout + unmigrated.stderr

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    away = {
        **cli_env,
        "CHANNELBOARD_DATABASE_URL": f"postgresql+asyncpg://u:hunter2@127.0.0.1:{port}/x",
    }
    unreachable = run(["token", "admin@acme.example"], away)
    assert unreachable.returncode == 3, unreachable.stdout + unreachable.stderr
    assert f"the database at postgresql+asyncpg://u:***@127.0.0.1:{port}/x is unreachable" in (
        unreachable.stderr
    )
    assert "hunter2" not in unreachable.stdout + unreachable.stderr
    assert "Traceback" not in unreachable.stdout + unreachable.stderr


@pytest.mark.slow
def test_migrate_demo_and_token(cli_env: dict[str, str], tmp_path: Path) -> None:
    assert run(["migrate"], cli_env).returncode == 0
    first = run(["demo"], cli_env)
    assert first.returncode == 0, first.stderr
    assert "rep@globex.example" in first.stdout
    again = run(["demo"], cli_env)  # idempotent
    assert again.returncode == 0, again.stderr
    assert again.stdout == first.stdout

    token = run(["token", "admin@acme.example", "--ttl", "600"], cli_env)
    assert token.returncode == 0, token.stderr
    claims = jwt.decode(token.stdout.strip(), options={"verify_signature": False})
    assert claims["role"] == "PARTNER_ADMIN"
    assert claims["exp"] - claims["iat"] == 600
    unknown = run(["token", "nobody@example.com"], cli_env)
    assert unknown.returncode == 1
    assert "no user" in unknown.stderr


@pytest.mark.slow
def test_token_for_an_unbound_subject(cli_env: dict[str, str]) -> None:
    minted = run(
        ["token", "--subject", "idp|42", "--email", "new@example.com", "--email-verified"],
        cli_env,
    )
    assert minted.returncode == 0, minted.stderr
    claims = jwt.decode(
        minted.stdout.strip(), DEVELOPMENT_SECRET, algorithms=["HS256"], audience="channelboard"
    )
    assert claims["sub"] == "idp|42"
    assert (claims["email"], claims["email_verified"]) == ("new@example.com", True)
    assert "role" not in claims
    plain = run(["token", "--subject", "idp|43"], cli_env)
    assert "email" not in jwt.decode(plain.stdout.strip(), options={"verify_signature": False})
    both = run(["token", "someone@example.com", "--subject", "idp|44"], cli_env)
    assert both.returncode == 2


@pytest.mark.slow
def test_export_schema_writes_the_sdl(cli_env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "out.graphql"
    assert run(["export-schema", "-o", str(out)], cli_env).returncode == 0
    assert out.read_text() == (ROOT / "schema.graphql").read_text()


@pytest.mark.slow
def test_serve_refuses_an_out_of_date_external_database(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**cli_env, "CHANNELBOARD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"}
    result = run(["serve", "--port", "1"], env)
    assert result.returncode == 3
    assert "channelboard migrate" in result.stderr


@pytest.mark.slow
def test_production_refuses_to_start_with_the_development_secret(
    cli_env: dict[str, str],
) -> None:
    result = run(["serve"], {**cli_env, "CHANNELBOARD_ENV": "production"})
    assert result.returncode == 2
    assert "development JWT secret" in result.stderr


@pytest.mark.slow
def test_serve_on_embedded_defaults(cli_env: dict[str, str], tmp_path: Path) -> None:
    """`serve` migrates the embedded SQLite itself, starts and stops the embedded Redis,
    and answers GraphQL with two workers."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "api", "serve", "--port", str(port), "--workers", "2"],
        env={**cli_env}, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        _wait_ready(proc, port)
        answer = httpx.post(
            f"http://127.0.0.1:{port}/graphql", json={"query": "{ __typename }"}, timeout=5
        )
        assert answer.json() == {"data": {"__typename": "Query"}}
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert not (tmp_path / "var" / "redis" / "redis.sock").exists() or not _responds(
        tmp_path / "var" / "redis" / "redis.sock"
    )
    assert (tmp_path / "var" / "channelboard.db").exists()


@pytest.mark.slow
def test_serve_stops_its_embedded_redis_before_exiting_on_sigterm(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    """A process manager stops the server with SIGTERM: the Redis the command started has
    stopped by the time the command has exited, which exits as SIGTERM ends a process.
    (uvicorn raises the signal again after its graceful shutdown; under the default handler
    that ended the process at once, before the command stopped its Redis.)"""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "api", "serve", "--port", str(port)],
        env={**cli_env}, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        _wait_ready(proc, port)
        (redis_pid,) = _children(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGTERM, output
    assert not _running(redis_pid), "the embedded Redis outlived the server"
    assert "Traceback" not in output


def _wait_ready(proc: subprocess.Popen[str], port: int) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
            if ready.status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        assert time.monotonic() < deadline, "serve did not become ready"
        time.sleep(0.3)


def _children(pid: int) -> list[int]:
    """The processes the main thread of ``pid`` started (Linux)."""
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _running(pid: int) -> bool:
    """Whether ``pid`` is a process that has not exited (a zombie has)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _responds(sock: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as s:
        try:
            s.connect(str(sock))
        except OSError:
            return False
        return True


@pytest.mark.slow
async def test_idempotency_prune_deletes_expired_keys(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    """`channelboard idempotency prune`, with the retention set to a day: a key of 25 hours
    goes, one of 23 hours stays."""
    import uuid  # noqa: PLC0415
    from datetime import UTC, datetime, timedelta  # noqa: PLC0415

    from sqlmodel import select  # noqa: PLC0415

    from api.settings import default_database_url  # noqa: PLC0415
    from infra.clock import FrozenClock  # noqa: PLC0415
    from infra.db import Database  # noqa: PLC0415
    from infra.idempotency import IdempotencyKey  # noqa: PLC0415
    from tests.factories import create_tenant  # noqa: PLC0415

    assert run(["migrate"], cli_env).returncode == 0
    db = Database(default_database_url(tmp_path / "var"))
    now = datetime.now(UTC)
    try:
        async with db.transaction() as session:
            tenant = await create_tenant(session, FrozenClock(now))
            for hours in (25, 23):
                session.add(
                    IdempotencyKey(
                        vendor_id=tenant.vendor.id,
                        caller="user:x",
                        scope="saleClaimCreate",
                        key=f"{hours}h",
                        fingerprint="f" * 64,
                        result_id=uuid.uuid4(),
                        created_at=now - timedelta(hours=hours),
                    )  # fmt: skip
                )
        pruned = run(
            ["idempotency", "prune", "--batch", "1"],
            {**cli_env, "CHANNELBOARD_IDEMPOTENCY_KEY_RETENTION_HOURS": "24"},
        )
        assert pruned.returncode == 0, pruned.stdout + pruned.stderr
        assert "removed 1 idempotency key(s) older than 24 hours" in pruned.stderr
        async with db.session() as session:
            assert [k.key for k in await session.exec(select(IdempotencyKey))] == ["23h"]
    finally:
        await db.dispose()
