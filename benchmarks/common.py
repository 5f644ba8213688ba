"""Shared setup for the benchmarks: a Redis (CHANNELBOARD_BENCH_REDIS_URL, or a private
embedded redis-server), a database, and a migrated schema with demo-like data."""

from __future__ import annotations

import os
import statistics
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from infra.redis import EmbeddedRedis


@contextmanager
def bench_redis() -> Iterator[str]:
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
