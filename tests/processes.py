"""Real channelboard processes for tests: uvicorn serving the app, and CLI commands, on the
test run's database, Redis and key namespace."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from api.settings import Settings
from tests.support import eventually


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


@asynccontextmanager
async def api_process(
    settings: Settings, *, port: int | None = None, **extra: str
) -> AsyncIterator[str]:
    """A uvicorn process serving the app (on ``port``, else a free one); yields its
    host:port once it answers."""
    port = port or free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--ws-per-message-deflate", "false",
        "--log-level", "warning", env=process_env(settings, **extra),
    )  # fmt: skip
    address = f"127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as client:

            async def answers() -> bool:
                try:
                    return (await client.get(f"http://{address}/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(answers, within=30)
        yield address
    finally:
        process.terminate()
        await process.wait()


@asynccontextmanager
async def cli_process(
    settings: Settings, *args: str, **extra: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``channelboard ARGS`` running in the background (output piped); killed if the block
    leaves it running."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "api", *args, env=process_env(settings, **extra),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
