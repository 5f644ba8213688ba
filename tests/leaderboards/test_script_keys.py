"""Every Lua script touches only the keys its call declares in KEYS (rule 1 of
``leaderboards.scoring.Scripts``; Redis's own rule for scripts, which it does not enforce:
on a cluster it checks only that a key is of the node's slots and, for a script with a
``#!lua`` shebang, of the declared keys' slot, so a same-slot key named inside the script
escapes the checks it makes before a script runs during a slot migration).

Each script is run the way the code runs it (credits, pages, standings, a rebuild with
credits journaled meanwhile and a stale period to drop, the lock's renewal, the board
check), on a Redis of the test's own watched with MONITOR: Redis shows each script call and,
right after it, every command the script ran (``[0 lua]``); the keys of those commands
(``COMMAND GETKEYS``) must all be among the call's KEYS. Every registered script must have
run, so a new one is checked too."""

from __future__ import annotations

import asyncio
import codecs
import hashlib
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import ResponseError

from infra.clock import OffsetClock
from infra.db import Database
from infra.redis import EmbeddedRedis, Keys, connect
from leaderboards import integrity
from leaderboards.boards import Boards
from leaderboards.models import RankingStyle
from leaderboards.rebuild import rebuild, renew_lock
from leaderboards.scoring import BatchItem, BoardMode, apply_credit, apply_credits
from schema.context import Services
from tests.factories import Tenant, approve_sale, create_contest, dispatch
from tests.leaderboards.test_rebuild_races import SwapHeld, reached

END = "end of the audit"
LINE = re.compile(r"^[\d.]+ \[\d+ (?P<client>[^\]]*)\] (?P<args>.*)$")
ARG = re.compile(r'"((?:[^"\\]|\\.)*)"')


@dataclass
class ScriptRun:
    sha: str
    declared: list[bytes]
    commands: list[list[bytes]] = field(default_factory=list)


def _args(text: str) -> list[bytes]:
    """A MONITOR line's arguments (each quoted, escaped as Redis's sdscatrepr does)."""
    return [codecs.escape_decode(arg.encode())[0] for arg in ARG.findall(text)]


def script_runs(lines: list[str]) -> list[ScriptRun]:
    """The script calls among MONITOR's lines, each with the commands it ran."""
    runs: list[ScriptRun] = []
    current: ScriptRun | None = None
    for line in lines:
        found = LINE.match(line)
        assert found, line
        args = _args(found["args"])
        if found["client"] == "lua":
            assert current is not None, f"a script's command without its call: {line}"
            current.commands.append(args)
            continue
        current = None
        name = args[0].upper()
        if name in (b"EVALSHA", b"EVAL"):
            sha = args[1].decode() if name == b"EVALSHA" else hashlib.sha1(args[1]).hexdigest()  # noqa: S324
            current = ScriptRun(sha, args[3 : 3 + int(args[2])])
            runs.append(current)
    return runs


@asynccontextmanager
async def audited(url: str) -> AsyncIterator[list[ScriptRun]]:
    """The script calls made on the server at ``url`` while the block runs (filled in
    once it has)."""
    client = Redis.from_url(url)
    lines: list[str] = []
    runs: list[ScriptRun] = []
    try:
        async with client.monitor() as monitor:
            assert monitor.connection is not None

            async def read() -> None:
                while True:
                    response = await monitor.connection.read_response()  # type: ignore[union-attr]
                    line = response.decode() if isinstance(response, bytes) else str(response)
                    if f'"{END}"' in line:
                        return
                    lines.append(line)

            reading = asyncio.create_task(read())
            try:
                yield runs
            finally:
                await client.echo(END)  # MONITOR's last line: every line before it is read
                await reading
        runs.extend(script_runs(lines))
    finally:
        await client.aclose()


async def keys_of(client: Redis, command: list[bytes]) -> list[bytes]:
    try:
        keys = await client.command_getkeys(*command)
    except ResponseError:  # a command without keys
        return []
    return [key if isinstance(key, bytes) else str(key).encode() for key in keys]


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[str]:
    """A Redis of the test's own: MONITOR there sees this test's commands only."""
    server = EmbeddedRedis(tmp_path / "redis")
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


@pytest.mark.parametrize("style", [RankingStyle.COMPETITION, RankingStyle.DENSE])
async def test_every_script_touches_only_the_keys_it_declares(
    style: RankingStyle, private_redis: str, services: Services, db: Database,
    clock: OffsetClock, tenant: Tenant,
) -> None:  # fmt: skip
    """COMPETITION keeps the plain board (z, seen); DENSE the rich one (raw, dz, dc too)."""
    contest = await create_contest(db, clock, tenant, ranking_style=style)
    await approve_sale(db, clock, tenant, partner=0, amount=300_00)
    await approve_sale(db, clock, tenant, partner=1, amount=200_00)
    await dispatch(services)  # the ledger (the app's own board is elsewhere)
    first, second = (p.id for p in tenant.partners[:2])
    redis = connect(private_redis)
    boards = Boards(redis, Keys("audit"))
    k, mode = boards.keys_of(contest.id), BoardMode.of(contest)
    async with audited(private_redis) as runs:
        await boards.page(contest, "all", 0, 10)  # not built yet
        await rebuild(db, boards, clock, contest.id)  # journal, swap, release
        held = SwapHeld(boards)
        rebuilding = asyncio.create_task(rebuild(db, held, clock, contest.id))
        await reached(held.holding, rebuilding)  # its copy built, not swapped in yet
        # Credits meanwhile (journaled), one to a period the ledger does not have (the
        # swap finds it on the board and drops it), one the copy does not count.
        await apply_credit(
            boards.scripts, k, mode, event_id=uuid.uuid4(), participant=first,
            period_key="1999-01", delta=5, tick=0, target=0,
        )  # fmt: skip
        await apply_credits(boards.scripts, k, mode, "all", [BatchItem(uuid.uuid4(), second, 7, 0)])
        token = await redis.get(k.lock)
        assert await renew_lock(boards, k, token.decode())
        assert await integrity.lost(db, boards, contest.id) is None  # being rebuilt
        held.go.set()
        await rebuilding
        assert await integrity.lost(db, boards, contest.id) is None
        assert (await boards.page(contest, "all", 0, 10)).total == 2
        await boards.standing(contest, "all", first)
        await boards.standings(contest, "all", [first, second])  # pipelined
        # A freeze's copy of a board (and of one the contest has not), paged, dropped.
        for period in ("all", "1998-01"):
            await boards.snapshot(contest.id, period, "snap:audit:", 60_000)
            await boards.page(contest, period, 0, 10, tmp="snap:audit:")
            await boards.drop_snapshot(contest.id, period, "snap:audit:")
    assert await redis.smembers(k.periods) == {b"all"}  # the stale period went

    names = {s.sha: name for name, s in vars(boards.scripts).items() if isinstance(s, AsyncScript)}
    assert {names.get(run.sha) for run in runs if run.commands} >= set(names.values())
    undeclared = set()
    for run in runs:
        for command in run.commands:
            for key in await keys_of(redis, command):
                if key not in run.declared:
                    undeclared.add(f"{names.get(run.sha, run.sha)}: {command[0].decode()} {key!r}")
    await redis.aclose()
    assert not undeclared, "undeclared keys touched:\n" + "\n".join(sorted(undeclared))
