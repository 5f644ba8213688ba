"""Real channelboard processes for tests: uvicorn serving the app, and CLI commands, on the
test run's database, Redis and key namespace.

None outlives its test: each runs in a process group of its own, is killed by its PID (the
group's id) when its block ends, and is reaped with a timeout, so a failing test cannot
leave one running (holding outbox leases, SQL locks or a port) nor hang its teardown on
it; on Linux each also dies with the test process (if pytest itself is killed)."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from api.settings import Settings
from tests.ports import free_port
from tests.redis_proxy import HoldingProxy
from tests.support import eventually

log = logging.getLogger(__name__)

# Seconds to wait for a killed process to be reaped before giving up on it (loudly).
REAP_WITHIN = 10.0
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the test process dies (Linux)."""
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


async def _spawn(*args: str, **kwargs: object) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *args,
        start_new_session=True,
        preexec_fn=_die_with_parent,
        **kwargs,  # type: ignore[arg-type]
    )


async def stop(process: asyncio.subprocess.Process, *, grace: float = 0.0) -> None:
    """Stop ``process`` and its process group (by its PID) unless it has exited: SIGTERM
    and up to ``grace`` seconds to leave, then SIGKILL; reaped within ``REAP_WITHIN``
    seconds more. Never hangs."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, REAP_WITHIN)):
        if process.returncode is None and wait:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, sig)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), wait)
    if process.returncode is None:
        log.error("process %d still running %.0f s after SIGKILL", process.pid, REAP_WITHIN)


def process_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a process that shares this test run's database and Redis;
    ``extra`` adds CHANNELBOARD_* settings (``DISPATCH="external"``)."""
    return {
        **os.environ,
        "CHANNELBOARD_ENV": "test",
        "CHANNELBOARD_VAR_DIR": str(settings.var_dir),
        "CHANNELBOARD_DATABASE_URL": settings.database_url,
        "CHANNELBOARD_REDIS_URL": settings.redis_url or "",
        "CHANNELBOARD_REDIS_CLUSTER": "true" if settings.redis_cluster else "false",
        "CHANNELBOARD_REDIS_NAMESPACE": settings.redis_namespace,
        "CHANNELBOARD_LOG_LEVEL": "warning",
        "COLUMNS": "200",
        **{f"CHANNELBOARD_{name}": value for name, value in extra.items()},
    }


@dataclass(frozen=True)
class Server:
    address: str  # host:port
    process: asyncio.subprocess.Process


@asynccontextmanager
async def api_server(
    settings: Settings, *, port: int | None = None, **extra: str
) -> AsyncIterator[Server]:
    """A uvicorn process serving the app (on ``port``, else a free one), once it answers;
    with its process, for a test that kills it (``kill``)."""
    port = port or free_port()
    process = await _spawn(
        sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--ws-per-message-deflate", "false",
        "--log-level", "warning", env=process_env(settings, **extra),
    )  # fmt: skip
    address = f"127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as client:

            async def answers() -> bool:
                assert process.returncode is None, f"the server exited ({process.returncode})"
                try:
                    return (await client.get(f"http://{address}/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            # Seconds when idle; on two cores shared by many test runs, tens of seconds.
            await eventually(answers, within=90)
        yield Server(address, process)
    finally:
        await stop(process, grace=REAP_WITHIN)


@asynccontextmanager
async def api_process(
    settings: Settings, *, port: int | None = None, **extra: str
) -> AsyncIterator[str]:
    """A uvicorn process serving the app (on ``port``, else a free one); yields its
    host:port once it answers."""
    async with api_server(settings, port=port, **extra) as server:
        yield server.address


async def kill(process: asyncio.subprocess.Process) -> None:
    """SIGKILL ``process`` and its group now (by its PID), as a crash or an OOM killer would:
    no handler runs, nothing is flushed; reaped within ``REAP_WITHIN`` seconds."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    await asyncio.wait_for(process.wait(), REAP_WITHIN)


@asynccontextmanager
async def cli_process(
    settings: Settings, *args: str, **extra: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``channelboard ARGS`` running in the background (output piped); killed (by PID,
    reaped with a timeout) if the block leaves it running."""
    process = await _spawn(
        sys.executable, "-m", "api", *args, env=process_env(settings, **extra),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        yield process
    finally:
        await stop(process)


@asynccontextmanager
async def python_process(
    settings: Settings, code: str, *args: str, **extra: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``python -c CODE ARGS`` with the app's modules and this test run's settings (output
    piped, stdin closed); killed (by PID, reaped with a timeout) if the block leaves it
    running. For a process a test stops or kills at a point of its choosing."""
    process = await _spawn(
        sys.executable, "-c", code, *args, env=process_env(settings, **extra),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        yield process
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGCONT)  # a stopped one cannot leave on SIGTERM
        await stop(process)


# ``channelboard ARGS`` (argv[3:]) that SIGKILLs itself at a chosen point, found without
# sleeping: just after its Nth commit (argv[1] "commit": the database has it, nothing after
# it ran), or just before the Nth SQL statement that contains argv[1].
_KILLED_COMMAND = """
import os, signal, sys
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

where, nth = sys.argv[1], int(sys.argv[2])
seen = [0]

def _count():
    seen[0] += 1
    if seen[0] == nth:
        os.kill(os.getpid(), signal.SIGKILL)

if where == "commit":
    event.listen(Session, "after_commit", lambda session: _count())
else:
    @event.listens_for(Engine, "before_cursor_execute")
    def _before(conn, cursor, statement, parameters, context, executemany):
        if where in statement:
            _count()

sys.argv = ["channelboard", *sys.argv[3:]]
from api.cli.main import main
main()
"""

KILLED = -signal.SIGKILL


async def cli_killed_at(
    settings: Settings, where: str, nth: int, *args: str, **extra: str
) -> tuple[int, str]:
    """``channelboard ARGS`` SIGKILLed by itself (no handler runs, nothing is flushed) just
    after its ``nth`` commit (``where="commit"``), or just before its ``nth`` SQL statement
    containing ``where``: its exit status (``KILLED`` when it was; it may end first) and
    its output."""
    async with python_process(
        settings, _KILLED_COMMAND, where, str(nth), *args, **extra
    ) as process:
        assert process.stdout is not None
        output = (await asyncio.wait_for(process.stdout.read(), 120)).decode()
        code = await asyncio.wait_for(process.wait(), REAP_WITHIN)
    return code, output


async def run_to_end(
    *args: str, env: dict[str, str], cwd: str, within: float
) -> tuple[int | None, str]:
    """Runs ARGS to its end (stdin closed, stderr into stdout); its exit status (None if it
    was still running after ``within`` seconds: then it and its group are killed, by its
    PID) and its output."""
    process = await _spawn(
        *args, env=env, cwd=cwd, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        output = await asyncio.wait_for(process.stdout.read(), within)
        await asyncio.wait_for(process.wait(), REAP_WITHIN)
    except TimeoutError:
        await stop(process, grace=5.0)
        return None, ""
    return process.returncode, output.decode(errors="replace")


async def killed_answering(
    server: Server,
    send: Callable[[httpx.AsyncClient], Awaitable[Any]],
    proxy: HoldingProxy | None = None,
) -> None:
    """``send`` a request to ``server`` (with the client it is given) and SIGKILL the
    server once ``proxy`` holds what it sent on (then the proxy goes on: what was on its way
    to the database arrives from a dead client, as it would have); without ``proxy``, once
    its answer is on its way (its transaction committed): the answer never arrives."""
    answer = HoldingProxy(f"http://{server.address}", b"HTTP/1.1", hold_marker=True, replies=True)
    held = proxy or answer
    async with (
        answer.running() as port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as http,
    ):
        if proxy is not None:
            answer.release.set()
        call = asyncio.create_task(send(http))
        holding = asyncio.create_task(held.holding.wait())
        await asyncio.wait({call, holding}, timeout=120, return_when=asyncio.FIRST_COMPLETED)
        assert holding.done(), f"the call ended unheld: {call.result() if call.done() else ''}"
        await kill(server.process)
        answer.discard = True
        held.release.set()
        try:
            await call
        except httpx.TransportError:
            return
        raise AssertionError("the killed server answered")
