"""Loopback ports for the servers the tests and benchmarks start (uvicorn, redis-server,
PostgreSQL, SMTP and HTTP receivers).

A port is checked free here and bound a moment later by another process. A port the kernel
picked (bind to port 0) lies in its ephemeral range, the range every outgoing connection's
local port is drawn from; on a machine running a suite's thousands of connections, one of
them could take the port in that moment, and the server would fail to start. So the ports
come from below that range, where only another explicit bind can take them."""

from __future__ import annotations

import random
import socket
from collections.abc import Collection
from pathlib import Path

LOWEST = 10000
BUS_OFFSET = 10000  # a Redis Cluster node's bus port is its port + 10000


def ephemeral_floor() -> int:
    """The lowest port the kernel hands out for port 0 and outgoing connections."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_port(*, bus: bool = False, taken: Collection[int] = (), host: str = "127.0.0.1") -> int:
    """A port free now on ``host`` (loopback by default), below the ephemeral range and not
    in ``taken``; ``bus``: port + 10000 free and below the range too (a Redis Cluster
    node), neither meeting a port or bus port of ``taken``."""
    offsets = (0, BUS_OFFSET) if bus else (0,)
    highest = ephemeral_floor() - 1 - offsets[-1]
    if highest <= LOWEST:  # an unusual range: take what the kernel gives
        return _kernel_port(host)
    avoid = {t + o for t in taken for o in (0, BUS_OFFSET)} if bus else set(taken)
    while True:
        port = random.randint(LOWEST, highest)  # noqa: S311 - not security
        wanted = [port + o for o in offsets]
        if avoid.intersection(wanted):
            continue
        try:
            for p in wanted:
                with socket.socket() as s:
                    s.bind((host, p))
        except OSError:
            continue
        return port


def _kernel_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
