"""The command line failing for a reason outside the code (a wrong database URL, a database
that refuses the connection, an unknown revision, an output path that cannot be written, a
value out of range, Ctrl-C): one line on stderr naming what is wrong, a non-zero status,
no traceback, and nothing written. Run as a user runs it, in subprocesses."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from infra.redis import EmbeddedRedis
from tests.api.test_cli import cli_env, run
from tests.ports import free_port

__all__ = ["cli_env"]  # the fixture, shared with test_cli

pytestmark = pytest.mark.slow


def _one_clean_line(result: subprocess.CompletedProcess[str], code: int, says: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == code, output
    assert says in result.stderr, output
    assert "Traceback" not in output


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("bogus://x", "the driver 'bogus' is not one this code runs on"),
        ("not a url", "CHANNELBOARD_DATABASE_URL is not a database URL"),
        ("postgresql://u:hunter2@127.0.0.1/x", "the driver 'postgresql' is not one"),
        ("mysql://u@127.0.0.1/x", "the driver 'mysql' is not one"),
    ],
)
@pytest.mark.backend_free  # the CLI on embedded defaults (cli_env)
def test_a_database_url_this_code_cannot_use_is_a_configuration_error(
    cli_env: dict[str, str], url: str, says: str
) -> None:
    result = run(["vendors", "list"], {**cli_env, "CHANNELBOARD_DATABASE_URL": url})
    _one_clean_line(result, 2, says)
    assert "hunter2" not in result.stdout + result.stderr


@pytest.mark.backend_free  # the CLI on embedded defaults (cli_env)
def test_a_database_host_that_does_not_resolve_is_unreachable(cli_env: dict[str, str]) -> None:
    url = "postgresql+asyncpg://u:hunter2@no-such-host.invalid/x"
    result = run(["vendors", "list"], {**cli_env, "CHANNELBOARD_DATABASE_URL": url})
    _one_clean_line(result, 3, "the database at postgresql+asyncpg://u:***@no-such-host")
    assert "hunter2" not in result.stdout + result.stderr


def test_a_database_that_refuses_the_connection_says_why(cli_env: dict[str, str]) -> None:
    from sqlalchemy.engine import make_url  # noqa: PLC0415

    server = os.environ.get("CHANNELBOARD_TEST_DATABASE_URL", "")
    if not server.startswith("postgresql"):
        pytest.skip("needs PostgreSQL (CHANNELBOARD_TEST_DATABASE_URL)")
    missing = make_url(server).set(database="channelboard_no_such_database")
    url = missing.render_as_string(hide_password=False)
    result = run(["vendors", "list"], {**cli_env, "CHANNELBOARD_DATABASE_URL": url})
    _one_clean_line(result, 3, 'refused the connection: database "channelboard_no_such_database"')


@pytest.mark.backend_free  # the CLI on embedded defaults (cli_env)
def test_migrate_to_an_unknown_revision_or_from_one(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    unknown = run(["migrate", "no_such_revision"], cli_env)
    _one_clean_line(unknown, 2, "cannot migrate: Can't locate revision identified by")

    assert run(["migrate"], cli_env).returncode == 0
    with sqlite3.connect(tmp_path / "var" / "channelboard.db") as db:  # a newer code's schema
        db.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    ahead = run(["migrate"], cli_env)
    _one_clean_line(ahead, 2, "'9999_from_the_future'")


def _migrated_with_initech(cli_env: dict[str, str]) -> None:
    """The embedded database migrated, with a vendor (slug ``initech``) to name."""
    assert run(["migrate"], cli_env).returncode == 0
    made = run(
        ["vendors", "create", "--name", "Initech", "--slug", "initech", "--admin-email",
         "admin@initech.example"], cli_env,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr


@pytest.mark.backend_free  # the CLI on embedded defaults (cli_env)
def test_an_export_to_a_path_that_cannot_be_written(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    _migrated_with_initech(cli_env)
    export = ["exports", "write", "commissions", "--vendor", "initech", "--out"]

    no_directory = run([*export, str(tmp_path / "missing" / "out.csv")], cli_env)
    _one_clean_line(no_directory, 1, f"{tmp_path / 'missing'}: no such directory")
    a_directory = run([*export, str(tmp_path)], cli_env)
    _one_clean_line(a_directory, 1, f"{tmp_path}: Is a directory")
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []

    # Standard output, a pipe here, is written as it is (it resolved to "pipe:[…]", no file).
    piped = run([*export, "/dev/stdout"], cli_env)
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.startswith("id,booked_at,"), piped.stdout
    assert "Traceback" not in piped.stderr


@pytest.mark.parametrize(
    "bounds",
    [["--since", "2026-12-02", "--until", "2026-12-01"], ["--since", "2026-12-01", "--until",
     "2026-12-01T00:00:00Z"]],
)  # fmt: skip
@pytest.mark.backend_free  # the CLI on embedded defaults (cli_env)
def test_an_export_range_that_selects_nothing_is_a_usage_error(
    cli_env: dict[str, str], tmp_path: Path, bounds: list[str]
) -> None:
    """It wrote a file with a header only and exited 0."""
    _migrated_with_initech(cli_env)
    out = tmp_path / "out.csv"
    export = ["exports", "write", "commissions", "--vendor", "initech", "--out", str(out)]
    result = run([*export, *bounds], cli_env)
    _one_clean_line(result, 2, "--since must be before --until (which is exclusive)")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []


@pytest.mark.parametrize(
    "args",
    [
        ["token", "admin@acme.example", "--ttl", "0"],
        ["token", "admin@acme.example", "--ttl", "-5"],
        ["token", "admin@acme.example", "--ttl", "99999999999999999999"],
        ["serve", "--port", "70000"],
        ["serve", "--port", "-1"],
    ],
)
@pytest.mark.backend_free  # the CLI on embedded defaults (cli_env)
def test_a_number_out_of_range_is_a_usage_error(cli_env: dict[str, str], args: list[str]) -> None:
    result = run(args, cli_env, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Invalid value for" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.backend_free  # the CLI on embedded defaults (cli_env)
def test_a_second_server_on_the_same_var_dir_says_the_first_holds_it(
    cli_env: dict[str, str],
) -> None:
    """Two ``serve`` in one folder: the second finds the first's embedded Redis running (a
    traceback before)."""
    first = EmbeddedRedis(Path(cli_env["CHANNELBOARD_VAR_DIR"]) / "redis")
    first.start()
    try:
        second = run(["serve", "--port", str(free_port())], cli_env, timeout=120)
    finally:
        first.stop()
    _one_clean_line(second, 2, "an embedded Redis is already running on")


def _counts(database: Path) -> tuple[int, int]:
    with sqlite3.connect(database) as db:
        partners = db.execute("SELECT count(*) FROM partner").fetchone()[0]
        audit = db.execute("SELECT count(*) FROM audit_entry").fetchone()[0]
    return partners, audit


@pytest.mark.backend_free  # the CLI on embedded defaults (cli_env)
def test_ctrl_c_in_the_middle_of_an_import_says_so_and_writes_nothing(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    """The file is a pipe the test writes: once a write larger than the pipe's buffer has
    gone through, the import has read rows of it (inside its transaction); Ctrl-C then, and
    the end of the file after it, leave the database as it was."""
    _migrated_with_initech(cli_env)
    database = tmp_path / "var" / "channelboard.db"
    before = _counts(database)
    fifo = tmp_path / "partners.csv"
    os.mkfifo(fifo)
    proc = subprocess.Popen(
        [sys.executable, "-m", "api", "partners", "import", str(fifo), "--vendor", "initech"],
        env={**cli_env}, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        with fifo.open("w") as writer:  # returns once the command has opened the file
            writer.write("name,region\n")
            rows = "".join(f"Partner {i},EMEA\n" for i in range(20_000))
            writer.write(rows)  # ~330 KB through a 64 KiB pipe: the import is reading it
            writer.flush()
            proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted (Ctrl-C)" in err
    assert "Traceback" not in err
    assert _counts(database) == before
