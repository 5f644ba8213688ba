"""Credited events per second through the idempotent Lua path vs raw pipelined ZINCRBY, on
the same Redis in the same run, from one process.

    .venv/bin/python -m benchmarks.scoring_throughput [--events 200000] [--batch 1000]
        [--dispatch-batch 500] [--e2e-events 20000]

"consumer Redis path" is what the outbox consumer runs for each batch of ledger rows
(``leaderboards.crediting.plan`` + ``apply``), fed dispatcher-sized batches. "end to end"
dispatches approvals through a Dispatcher with the leaderboard handlers only, on a
temporary SQLite database (SQL read pass, ledger insert, Redis, marking dispatched).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from api import migrations
from benchmarks.common import bench_redis
from deal_registration.events import Line, SaleApproved
from infra.clock import SystemClock
from infra.db import Database
from infra.outbox import Dispatcher, new_event
from infra.pubsub import Hub
from infra.redis import AnyRedis, Keys, connect
from leaderboards import crediting
from leaderboards.boards import Boards
from leaderboards.handlers import handlers
from leaderboards.models import Contest, ContestCredit, RankingStyle
from leaderboards.runtime import Leaderboards
from leaderboards.scoring import (
    DUPLICATE,
    BatchItem,
    BoardKeys,
    BoardMode,
    Scripts,
    apply_credits,
    credit_call,
)
from tests.factories import create_contest, create_tenant


async def run(
    events: int, batch: int, participants: int, dispatch_batch: int, e2e_events: int
) -> None:
    with bench_redis() as url:
        redis = connect(url)
        keys = Keys(f"bench-{uuid.uuid4().hex[:6]}")
        members = [str(uuid.uuid4()) for _ in range(participants)]
        event_ids = [str(uuid.uuid4()) for _ in range(events)]
        raw_key = keys("raw-zset")

        raw_rate = await raw_zincrby(redis, raw_key, members, events, batch)
        print(f"{'raw pipelined ZINCRBY:':<42} {raw_rate:>10,.0f} /s")

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
                    # redis-py's stubs omit the pipelines AsyncScript.__call__ takes.
                    await scripts.credit(keys=k, args=a, client=pipe)  # type: ignore[arg-type]
                await pipe.execute()
            rate = events / (time.perf_counter() - start)
            # Replaying the same events must change nothing.
            pipe = redis.pipeline(transaction=False)
            for i in range(min(events, batch)):
                k, a = credit_call(
                    board, mode, event_id=event_ids[i], participant=members[i % participants],
                    period_key="all", delta=100, tick=0, target=0,
                )  # fmt: skip
                await scripts.credit(keys=k, args=a, client=pipe)  # type: ignore[arg-type]
            assert all(r == 0 for r in await pipe.execute()), "replay credited twice"
            print(f"{label + ':':<42} {rate:>10,.0f} /s  ratio {rate / raw_rate:.2f}")

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
            print(f"{label + ':':<42} {rate:>10,.0f} /s  ratio {rate / raw_rate:.2f}")
        print()
        for label, style in (
            ("competition", RankingStyle.COMPETITION),
            ("dense", RankingStyle.DENSE),
            ("first-to-reach", RankingStyle.FIRST_TO_REACH),
        ):
            # Raw measured again right before: on a shared machine the load moves, and the
            # ratio should compare like with like.
            raw_rate = await raw_zincrby(redis, raw_key, members, events, batch)
            rate = await consumer_path(redis, keys, style, event_ids, members, dispatch_batch)
            print(
                f"{'consumer Redis path (' + label + '):':<42} {rate:>10,.0f} /s"
                f"  raw just before {raw_rate:,.0f} /s, ratio {rate / raw_rate:.2f}"
                f"  ({dispatch_batch} events per batch)"
            )
        async for key in redis.scan_iter(match=keys("*")):
            await redis.delete(key)
        await redis.aclose()
        if e2e_events:
            print()
            rate = await end_to_end(url, e2e_events, dispatch_batch)
            print(f"{'end to end, SQLite (competition):':<42} {rate:>10,.0f} /s  (no target)")


async def raw_zincrby(
    redis: AnyRedis, key: str, members: list[str], events: int, batch: int
) -> float:
    start = time.perf_counter()
    for offset in range(0, events, batch):
        pipe = redis.pipeline(transaction=False)
        for i in range(offset, min(offset + batch, events)):
            pipe.zincrby(key, 100, members[i % len(members)])
        await pipe.execute()
    return events / (time.perf_counter() - start)


async def consumer_path(
    redis: AnyRedis,
    keys: Keys,
    style: RankingStyle,
    event_ids: list[str],
    members: list[str],
    dispatch_batch: int,
) -> float:
    """Credits/s through the consumer's Redis step, from ledger rows already planned in SQL."""
    now = datetime.now(UTC)
    # Only id, ranking_style and targets are read; the other required fields are stand-ins.
    contest = Contest(
        id=uuid.uuid4(), ranking_style=style, targets={}, vendor_id=uuid.uuid4(), name="bench",
        starts_at=now, ends_at=now, created_at=now, updated_at=now,
    )  # fmt: skip
    boards = Boards(redis, keys)
    await redis.set(boards.keys_of(contest.id).built, "1")
    rows = [
        ContestCredit(
            contest_id=contest.id,
            event_id=uuid.UUID(e),
            event_type="SaleApproved",
            period_key="all",
            participant_id=uuid.UUID(members[i % len(members)]),
            delta=100,
            tick=i // 1000,
            occurred_at=now,
            created_at=now,
        )  # fmt: skip
        for i, e in enumerate(event_ids)
    ]
    contests = {contest.id: contest}
    start = time.perf_counter()
    for offset in range(0, len(rows), dispatch_batch):
        batches = crediting.plan(rows[offset : offset + dispatch_batch], contests, boards.keys_of)
        results = await crediting.apply(boards.scripts, batches)
        assert all(r > 0 for r in results), results
    rate = len(rows) / (time.perf_counter() - start)
    again = crediting.plan(rows[:dispatch_batch], contests, boards.keys_of)
    assert await crediting.apply(boards.scripts, again) == [DUPLICATE] * len(again)
    return rate


async def end_to_end(redis_url: str, events: int, dispatch_batch: int) -> float:
    """Approvals/s through Dispatcher + the leaderboard consumer, SQLite + Redis."""
    with tempfile.TemporaryDirectory(prefix="cbbench-e2e-") as tmp:
        db_url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        await migrations.upgrade(db_url)
        db = Database(db_url)
        redis = connect(redis_url)
        clock = SystemClock()
        keys = Keys(f"bench-{uuid.uuid4().hex[:6]}")
        hub = Hub(redis, keys)
        async with db.transaction() as session:
            tenant = await create_tenant(session, clock, partners=50)
        contest = await create_contest(db, clock, tenant)
        dispatcher = Dispatcher(db, clock, batch_size=dispatch_batch)
        leaderboards = Leaderboards(db, Boards(redis, keys), clock, hub, dispatcher=dispatcher)
        dispatcher.register_all(handlers(leaderboards))
        await dispatcher.dispatch_pending()  # the contest's own event: builds its boards
        async with db.transaction() as session:
            now = clock.now()
            for i in range(events):
                partner = tenant.partners[i % len(tenant.partners)]
                sale = SaleApproved(
                    claim_id=uuid.uuid4(), partner_id=partner.id, rep_user_id=None,
                    region="EMEA", currency="USD", amount_minor=100_00,
                    lines=[Line(sku="NW-ROUTER-X1", units=1, amount_minor=100_00)],
                    sold_at=now, approved_at=now,
                )  # fmt: skip
                session.add(
                    new_event(
                        vendor_id=tenant.vendor.id,
                        type=SaleApproved.type,
                        aggregate_id=sale.claim_id,
                        payload=sale.to_payload(),
                        occurred_at=now,
                        recorded_at=now,
                    )  # fmt: skip
                )
        start = time.perf_counter()
        done = await dispatcher.dispatch_pending()
        rate = done / (time.perf_counter() - start)
        assert done == events, done
        page = await leaderboards.boards.page(contest, "all", 0, 100)
        assert sum(r.score for r in page.rows) == events * 100_00, "credits lost or doubled"
        async for key in redis.scan_iter(match=keys("*")):
            await redis.delete(key)
        await hub.close()
        await redis.aclose()
        await db.dispose()
        return rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--participants", type=int, default=10_000)
    parser.add_argument("--dispatch-batch", type=int, default=500, help="events per dispatch")
    parser.add_argument("--e2e-events", type=int, default=20_000, help="0 skips end to end")
    args = parser.parse_args()
    asyncio.run(
        run(args.events, args.batch, args.participants, args.dispatch_batch, args.e2e_events)
    )


if __name__ == "__main__":
    main()
