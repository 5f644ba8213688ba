"""uvicorn under tracemalloc, for benchmarks/leaderboard_fanout.py --trace-memory:

    python -m benchmarks.traced_server PREFIX <uvicorn arguments>

The first SIGUSR1 starts tracing (what was allocated before is not traced: compare later
snapshots). Each SIGUSR1 writes a snapshot (after a full collection) to
PREFIX-<pid>-<n>.snap, and the count of objects the collector tracks by type to
PREFIX-<pid>-<n>.snap.types."""

from __future__ import annotations

import gc
import itertools
import json
import os
import signal
import sys
import tracemalloc
from collections import Counter
from pathlib import Path
from types import FrameType

import uvicorn


def main() -> None:
    prefix, *args = sys.argv[1:]
    counter = itertools.count()

    def dump(_signum: int, _frame: FrameType | None) -> None:
        gc.collect()
        if not tracemalloc.is_tracing():  # from the first snapshot on: a fast startup
            tracemalloc.start(int(os.environ.get("CHANNELBOARD_BENCH_TRACE_FRAMES", "1")))
        path = f"{prefix}-{os.getpid()}-{next(counter)}.snap"
        types = Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.get_objects())
        Path(path + ".types").write_text(json.dumps(types))
        tracemalloc.take_snapshot().dump(path + ".part")
        os.replace(path + ".part", path)  # complete when it appears

    signal.signal(signal.SIGUSR1, dump)
    sys.argv = ["uvicorn", *args]
    uvicorn.main()


if __name__ == "__main__":
    main()
