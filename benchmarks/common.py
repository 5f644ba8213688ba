"""Shared setup for the benchmarks: a Redis (CHANNELBOARD_BENCH_REDIS_URL, or a private
embedded redis-server), a database, and a migrated schema with demo-like data."""

from __future__ import annotations

import gc
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from infra.redis import EmbeddedRedis


@contextmanager
def bench_redis(*, cluster: bool = False) -> Iterator[str]:
    """A Redis URL; ``cluster``: a seed node of a private local Redis Cluster (three
    masters with a replica each, as the cluster tests start)."""
    if cluster:
        from tests.redis_cluster import LocalCluster  # noqa: PLC0415 - only when asked

        with tempfile.TemporaryDirectory(prefix="cbbench-cluster-") as tmp:
            local = LocalCluster(Path(tmp)).start()
            try:
                yield local.url
            finally:
                local.stop()
        return
    url = os.environ.get("CHANNELBOARD_BENCH_REDIS_URL")
    if url:
        yield url
        return
    with tempfile.TemporaryDirectory(prefix="cbbench-") as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis")
        try:
            yield server.start()
        finally:
            server.stop()


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary_ms(values: list[float]) -> str:
    return (
        f"p50 {percentile(values, 50) * 1000:.3f} ms, p99 {percentile(values, 99) * 1000:.3f} ms,"
        f" mean {statistics.fmean(values) * 1000:.3f} ms (n={len(values)})"
    )


def machine_speed() -> str:
    """A yardstick printed beside CPU figures: the best of three runs of a fixed pure-Python
    loop. This machine is a VM whose host varies between sessions (the same code measured
    twice as slow one day as the day before), so figures of different days compare only
    through it."""
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        total = 0
        for i in range(10_000_000):
            total += i
        best = min(best, time.process_time() - started)
    return f"yardstick: a 10,000,000-step Python loop took {best:.2f} s of CPU (best of 3)"


class CollectorTime:
    """The garbage collector's passes, and their CPU, inside ``counting()`` blocks (the
    process's CPU: the collector runs on whichever thread allocates)."""

    def __init__(self) -> None:
        self.cpu = 0.0
        self.passes = 0
        self.full = 0
        self._on = False
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if not self._on:
            return
        if phase == "start":
            self._started = time.process_time()
            return
        self.cpu += time.process_time() - self._started
        self.passes += 1
        self.full += info["generation"] == 2

    @contextmanager
    def counting(self) -> Iterator[None]:
        self._on = True
        try:
            yield
        finally:
            self._on = False
