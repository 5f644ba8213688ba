"""Every benchmark in benchmarks/ runs at tiny sizes and prints its figures.

They are run by hand, so a change that breaks one (a seed the schema no longer accepts, an
import, an option) would otherwise surface only at the next measurement. Each runs here as
`python -m benchmarks.<name>` (two_hosts.sh as itself) and must exit 0 and print its figure
lines; nothing about the figures' values is asserted. A benchmark that takes a database URL
gets a fresh one of the suite's kind (a scratch PostgreSQL database on the suite's server,
dropped afterwards, or a SQLite file); each runs in one pass of CI only, the SQLite one
unless it needs PostgreSQL; its Redis is its own embedded one (the benchmarks
leave their keys behind). Those that need something this machine may lack (PostgreSQL,
root, wrk, redis-cli) skip saying what."""

from __future__ import annotations

import os
import re
import shutil
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from infra.db import is_sqlite
from tests.processes import run_to_end

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"
# A bound on a hang, not a measure: the slowest here takes under a minute on a loaded machine.
WITHIN = 240.0


@dataclass(frozen=True)
class Bench:
    name: str
    args: str  # split at spaces; "{url}": a fresh database of the suite's kind
    figures: tuple[str, ...]
    postgres: bool = False  # PostgreSQL only (COPY, the outbox's partitions)
    cluster: bool = False  # starts a local Redis Cluster

    @property
    def id(self) -> str:
        return "-".join([self.name, *(a.strip("-") for a in self.args.split() if a in FLAGS)])


OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
FLAGS = {"handlers", "rebuild", "--cluster", "--program"}

CASES = [
    Bench("deal_conflicts", "", ("precision", "recall")),
    Bench(
        "dispatch_cost",
        "--approvals 4 --runs 1,2 --program --database-url {url}",
        ("ms CPU per approval dispatched",),
    ),
    Bench(
        "dispatch_scaling",
        "--database-url {url} --approvals 4 --dispatchers 1,2",
        ("1 dispatcher(s):", "2 dispatcher(s):", "approvals/s", "CPU of a core each"),
        postgres=True,
    ),
    Bench(
        "earnings_ledger",
        "--sales 10 --run 5 --url {url}",
        ("sales/s", "summary over 10 sales"),
    ),
    Bench(
        "forecast_rollup",
        "--database-url {url} --partners 3 --deals 5 --sources 3 --runs 2",
        ("vendor admin    by PARTNER", "channel manager by GROUP", "p99"),
    ),
    Bench(
        "leaderboard_fanout",
        "--subscribers 2 --partners 2 --rate 2 --duration 1 --clients 1 --database-url {url}",
        ("KiB per subscriber", "commit-to-receive latency over", "p99", "ended on the final"),
    ),
    Bench(
        "leaderboard_fanout",
        "--subscribers 2 --partners 2 --rate 2 --duration 1 --clients 1"
        " --dispatch process --program --cluster",
        ("dispatcher process (every handler", "commit-to-receive latency over", "p99"),
        cluster=True,
    ),
    Bench(
        "reads",
        "--big 10 --duration 1 --database-url {url}",
        ("participants: Redis read p50", "GraphQL over HTTP p50", "p99"),
    ),
    Bench(
        "renewal_import",
        "--database-url {url} --rows 8",
        ("first import:", "same file again:", "rows/s"),
        postgres=True,
    ),
    Bench(
        "rule_evaluation",
        "--partners 10 --rules 3 --url {url}",
        ("CEL alone:", "daily run (read, evaluate, write firings and actions):"),
    ),
    Bench(
        "scoring_throughput",
        "--events 100 --batch 10 --participants 5 --dispatch-batch 10 --e2e-events 20",
        ("raw pipelined ZINCRBY:", "consumer Redis path", "end to end, SQLite"),
    ),
    Bench(
        "serial_import",
        "--database-url {url} --rows 10",
        ("first import:", "same file again:", "every 10th row changed:", "rows/s"),
    ),
    Bench(
        "signal_maintenance",
        "handlers --approvals 4 --run 2 --partners 3 --reps 1 --claims 3 --url {url}",
        ("per approval",),
    ),
    Bench(
        "signal_maintenance",
        "rebuild --url {url} --partners 3 --entries 20",
        ("rebuild:", "snapshots in"),
        postgres=True,
    ),
    Bench(
        "tv_screens",
        "--screens 2 --rate 2 --duration 1",
        ("| partner subscribers |", "| TV screens (display keys) |"),
    ),
    Bench(
        "validation_cost",
        "--runs 1 --issue-repeats 20",
        ("under the limits", "refused", "before the checks, the issue's document"),
    ),
    Bench(
        "webhook_delivery",
        "--deliveries 5 --concurrency 2 --database-url {url}",
        ("rows/s", "deliveries/s", "per delivery"),
    ),
    Bench(
        "ws_recheck",
        "--sockets 5 --database-url {url}",
        ("re-check of 5 open sockets' principals:",),
    ),
]

# Modules that are not benchmarks of their own: what the benchmarks above start or import.
HELPERS = {"__init__", "common", "plain_app", "traced_server", "two_hosts"}


def test_every_benchmark_has_a_case() -> None:
    modules = {path.stem for path in BENCHMARKS.glob("*.py")} - HELPERS
    assert modules == {case.name for case in CASES}


@pytest.mark.parametrize("module", sorted(p.stem for p in BENCHMARKS.glob("*.py")))
def test_the_docstring_names_only_options_the_benchmark_has(module: str) -> None:
    """The commands in a benchmark's docstring (the lines from one naming the module to
    the next blank line; docs/benchmarks.md copies them) name options its parser defines."""
    source = (BENCHMARKS / f"{module}.py").read_text()
    docstring = source.split('"""')[1] if source.count('"""') >= 2 else ""
    names_it = re.compile(rf"benchmarks[./]{module}\b")
    commands, in_command = [], False
    for line in docstring.splitlines():
        in_command = bool(line.strip()) and (in_command or bool(names_it.search(line)))
        if in_command:
            commands.append(line)
    missing = {o for o in OPTION.findall("\n".join(commands)) if f'"{o}"' not in source}
    assert not missing, f"benchmarks/{module}.py's docstring names {sorted(missing)}"


def test_the_docs_commands_name_only_options_the_benchmarks_have() -> None:
    """Every `python -m benchmarks.<name> ...` in docs/ (with its continuation lines)."""
    stale = []
    for doc in sorted((ROOT / "docs").glob("*.md")):
        lines = doc.read_text().splitlines()
        for number, line in enumerate(lines, 1):
            found = re.search(r"-m benchmarks\.(\w+)", line)
            if found is None:
                continue
            command = [line[found.start() :]]
            for more in lines[number:]:
                if not command[-1].rstrip().endswith("\\"):
                    break
                command.append(more)
            module = BENCHMARKS / f"{found.group(1)}.py"
            if not module.exists():
                stale.append(f"{doc.name}:{number}: no {module.name}")
                continue
            source = module.read_text()
            text = "\n".join(command).split("`")[0]  # inline code ends at its backtick
            stale += [
                f"{doc.name}:{number}: {found.group(1)} {option}"
                for option in OPTION.findall(text)
                if f'"{option}"' not in source
            ]
    assert not stale


def _env() -> dict[str, str]:
    """This environment without the suite's CHANNELBOARD_* settings (a benchmark picks its
    own), with this checkout's modules first."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHANNELBOARD_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


@asynccontextmanager
async def _fresh_database(database_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of the suite's kind: a SQLite file, or a database of its own on
    the suite's PostgreSQL server, dropped afterwards."""
    if is_sqlite(database_url):
        yield f"sqlite+aiosqlite:///{tmp_path / 'bench.db'}"
        return
    url = make_url(database_url)
    name = f"{url.database}_bench_{uuid.uuid4().hex[:6]}"
    admin = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, password=url.password,
        database="postgres",
    )  # fmt: skip
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def _assert_ran(code: int | None, output: str, figures: tuple[str, ...]) -> None:
    assert code is not None, f"still running after {WITHIN:.0f} s"
    assert code == 0, output[-6000:]
    missing = [figure for figure in figures if figure not in output]
    assert not missing, f"no {missing} in:\n{output[-6000:]}"


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
async def test_benchmark_runs_at_tiny_sizes(case: Bench, database_url: str, tmp_path: Path) -> None:
    if case.postgres != (not is_sqlite(database_url)):
        # Each runs once a CI run, in the pass of the database it needs: the SQLite pass
        # runs those that take either (a break is seldom one database's), the PostgreSQL
        # pass those only it has.
        pytest.skip("PostgreSQL only" if case.postgres else "run in the SQLite pass")
    if case.cluster and shutil.which("redis-cli") is None:
        pytest.skip("a local Redis Cluster needs redis-cli (and redis-server 7+) on PATH")
    figures = case.figures
    if case.name == "reads":
        has_wrk = shutil.which("wrk") is not None
        figures += ("Requests/sec",) if has_wrk else ("wrk not found: skipping requests/s",)
    async with _fresh_database(database_url, tmp_path) as url:
        args = [url if arg == "{url}" else arg for arg in case.args.split()]
        code, output = await run_to_end(
            sys.executable, "-m", f"benchmarks.{case.name}", *args,
            env=_env(), cwd=str(ROOT), within=WITHIN,
        )  # fmt: skip
    _assert_ran(code, output, figures)


@pytest.mark.slow
async def test_two_hosts_runs_one_sale(database_url: str) -> None:
    """benchmarks/two_hosts.sh on the suite's PostgreSQL server (it makes and drops a
    database of its own there), with one sale."""
    if is_sqlite(database_url):
        pytest.skip("two_hosts.sh needs PostgreSQL, and the suite runs on SQLite")
    if os.geteuid() != 0:
        pytest.skip("two_hosts.sh needs root (ip netns add)")
    absent = [t for t in ("ip", "redis-server", "redis-cli", "psql") if shutil.which(t) is None]
    if absent:
        pytest.skip(f"two_hosts.sh needs {', '.join(absent)} on PATH")
    url = make_url(database_url)
    env = {
        **_env(), "PYTHON": sys.executable, "PGHOST": url.host or "127.0.0.1",
        "PGPORT": str(url.port or 5432), "PGUSER": url.username or "postgres",
    }  # fmt: skip
    if url.password:
        env["PGPASSWORD"] = url.password
    code, output = await run_to_end(
        "bash", str(BENCHMARKS / "two_hosts.sh"), "--sales", "1",
        env=env, cwd=str(ROOT), within=WITHIN,
    )  # fmt: skip
    _assert_ran(code, output, ("approval through host A -> push on host B (cross-host): p50",))
