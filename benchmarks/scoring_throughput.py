"""Credited events per second through the idempotent Lua path vs raw pipelined ZINCRBY, on
the same Redis in the same run, from one process.

    .venv/bin/python -m benchmarks.scoring_throughput [--events 200000] [--batch 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

from benchmarks.common import bench_redis
from infra.redis import Keys, connect
from leaderboards.scoring import (
    BatchItem,
    BoardKeys,
    BoardMode,
    Scripts,
    apply_credits,
    credit_call,
)


async def run(events: int, batch: int, participants: int) -> None:
    with bench_redis() as url:
        redis = connect(url)
        keys = Keys(f"bench-{uuid.uuid4().hex[:6]}")
        members = [str(uuid.uuid4()) for _ in range(participants)]
        event_ids = [str(uuid.uuid4()) for _ in range(events)]
        raw_key = keys("raw-zset")

        start = time.perf_counter()
        for offset in range(0, events, batch):
            pipe = redis.pipeline(transaction=False)
            for i in range(offset, min(offset + batch, events)):
                pipe.zincrby(raw_key, 100, members[i % participants])
            await pipe.execute()
        raw_rate = events / (time.perf_counter() - start)
        print(f"raw pipelined ZINCRBY:          {raw_rate:>10,.0f} /s")

        scripts = Scripts(redis)
        modes = {
            "idempotent credit (competition)": BoardMode(scale=1, rich=False, dense=False),
            "idempotent credit (dense)": BoardMode(scale=1, rich=True, dense=True),
            "idempotent credit (first-to-reach)": BoardMode(scale=1 << 20, rich=True, dense=False),
        }
        for label, mode in modes.items():
            board = BoardKeys(keys, uuid.uuid4())
            await redis.set(board.built, "1")
            start = time.perf_counter()
            for offset in range(0, events, batch):
                pipe = redis.pipeline(transaction=False)
                for i in range(offset, min(offset + batch, events)):
                    k, a = credit_call(
                        board, mode, event_id=event_ids[i], participant=members[i % participants],
                        period_key="all", delta=100, tick=i // 1000, target=0,
                    )  # fmt: skip
                    await scripts.credit(keys=k, args=a, client=pipe)
                await pipe.execute()
            rate = events / (time.perf_counter() - start)
            # Replaying the same events must change nothing.
            pipe = redis.pipeline(transaction=False)
            for i in range(min(events, batch)):
                k, a = credit_call(
                    board, mode, event_id=event_ids[i], participant=members[i % participants],
                    period_key="all", delta=100, tick=0, target=0,
                )  # fmt: skip
                await scripts.credit(keys=k, args=a, client=pipe)
            assert all(r == 0 for r in await pipe.execute()), "replay credited twice"
            print(f"{label + ':':<35} {rate:>10,.0f} /s  ratio {rate / raw_rate:.2f}")

            board = BoardKeys(keys, uuid.uuid4())
            await redis.set(board.built, "1")
            start = time.perf_counter()
            for offset in range(0, events, batch):
                items = [
                    BatchItem(event_ids[i], members[i % participants], 100, i // 1000)
                    for i in range(offset, min(offset + batch, events))
                ]
                await apply_credits(scripts, board, mode, "all", items)
            rate = events / (time.perf_counter() - start)
            again = [
                BatchItem(event_ids[i], members[i % participants], 100, 0) for i in range(batch)
            ]
            assert await apply_credits(scripts, board, mode, "all", again) == 0
            label = label.replace("credit", "batch credit")
            print(f"{label + ':':<35} {rate:>10,.0f} /s  ratio {rate / raw_rate:.2f}")
        async for key in redis.scan_iter(match=keys("*")):
            await redis.delete(key)
        await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--participants", type=int, default=10_000)
    args = parser.parse_args()
    asyncio.run(run(args.events, args.batch, args.participants))


if __name__ == "__main__":
    main()
