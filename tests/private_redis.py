"""A Redis server a test owns and may kill and start again (the shared one is never
stopped): the embedded one, which keeps its data, or a redis-server without persistence,
which comes back empty."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from infra.redis import EmbeddedRedis, redis_server_binary
from tests.ports import free_port
from tests.support import eventually


class RedisUnderTest:
    """A Redis server this test owns and may kill: ``embedded`` (EmbeddedRedis, data kept
    in its append-only file) or ``external`` (redis-server on a free port, no persistence:
    a restart comes back empty, as after a flush or a failover to an empty replica)."""

    def __init__(self, kind: str, data_dir: Path) -> None:
        self.kind = kind
        self.embedded = EmbeddedRedis(data_dir) if kind == "embedded" else None
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> str:
        if self.embedded is not None:
            self.url = self.embedded.start()
            return self.url
        binary = shutil.which("redis-server") or redis_server_binary()
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.url = f"redis://127.0.0.1:{self.port}/0"
        return self.url

    async def wait_ready(self) -> None:
        from redis.asyncio import Redis  # noqa: PLC0415

        async def answers() -> bool:
            client = Redis.from_url(self.url, socket_connect_timeout=0.5)
            try:
                return bool(await client.ping())
            except Exception:  # noqa: BLE001 - not yet
                return False
            finally:
                await client.aclose()

        await eventually(answers, within=15)

    def kill(self) -> None:
        """SIGKILL: no goodbye to the clients."""
        process = self.embedded.process if self.embedded is not None else self.process
        assert process is not None
        process.kill()
        process.wait()
        if self.embedded is not None:
            self.embedded.process = None

    def stop(self) -> None:
        if self.embedded is not None:
            self.embedded.stop()
        elif self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
