"""Approvals per second through every handler the app registers (live notices, contest
scoring, earnings crediting with a tiered program and its notices, concentration
guardrails, signal facts and snapshots, the incentive rules they trigger, notifications,
webhook deliveries) with 1, 2, … `channelboard dispatch` processes sharing the outbox
(CHANNELBOARD_OUTBOX_PARTITIONS, PostgreSQL only).

    .venv/bin/python -m benchmarks.dispatch_scaling --database-url postgresql+asyncpg://…/EMPTY_DB
        [--approvals 2000] [--dispatchers 1,2] [--partitions 16] [--partners 200]

For each dispatcher count: commit a backlog of approvals (the fan-out tenant with an earnings
program, ``--partners`` partners, one live contest) while every partition is held by the
benchmark, start the dispatchers, release the partitions once all of them are registered,
and time until the outbox is empty (the events the handlers record in turn included:
EarningsChanged, SignalsChanged, ...). The dispatchers' daily signal snapshot job is off
(CHANNELBOARD_SIGNALS_DAILY_INTERVAL_SECONDS=0): its first pass would snapshot every
partner at start-up and add that to the first drain.
A drain measures the most the dispatchers can do, not a latency. Prints approvals/s and
each dispatcher's CPU; not part of the test run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta

from benchmarks.common import bench_redis
from benchmarks.leaderboard_fanout import add_program, seed

HOLD = "benchmark-hold"


def _cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()  # noqa: SIM115, PTH123
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def backlog(env: dict[str, str], approvals: int, partitions: int) -> None:
    """Hold every partition, then commit ``approvals`` approvals (one transaction each)."""
    from sqlalchemy import delete, update  # noqa: PLC0415
    from sqlalchemy.dialects.postgresql import insert  # noqa: PLC0415
    from sqlmodel import select  # noqa: PLC0415

    from api.settings import Settings  # noqa: PLC0415
    from catalogue import demo as catalogue_demo  # noqa: PLC0415
    from catalogue.models import Product  # noqa: PLC0415
    from infra.clock import SystemClock  # noqa: PLC0415
    from infra.db import Database  # noqa: PLC0415
    from infra.outbox import OutboxEvent  # noqa: PLC0415
    from infra.outbox_partitions import OutboxDispatcher, OutboxPartition  # noqa: PLC0415
    from leaderboards.demo import approve_demo_sale  # noqa: PLC0415
    from partners.models import Partner, Vendor  # noqa: PLC0415

    clock = SystemClock()
    db = Database(Settings.from_env(env).database_url)
    held_until = datetime.now(UTC) + timedelta(hours=1)
    async with db.transaction() as session:
        await session.execute(delete(OutboxDispatcher))
        await session.execute(delete(OutboxPartition))
        await session.execute(
            insert(OutboxPartition).values(
                [
                    {"partition": p, "holder": HOLD, "expires_at": held_until}
                    for p in range(partitions)
                ]
            )
        )
        # What earlier rounds left (none: they drain) and the set-up's own events.
        await session.execute(update(OutboxEvent).values(dispatched_at=clock.now()))
    async with db.transaction() as session:
        vendor = (await session.exec(select(Vendor))).one()
        products = list((await session.exec(select(Product))).all())
        if not products:
            products = list((await catalogue_demo.seed(session, clock, vendor)).values())
    async with db.session() as session:
        partners = list(await session.exec(select(Partner)))
    for _ in range(approvals):
        async with db.transaction() as session:
            await approve_demo_sale(
                session, clock, vendor_id=vendor.id, partner=random.choice(partners), rep=None,
                product=random.choice(products), units=2,
            )  # fmt: skip
    await db.dispose()


async def drain(env: dict[str, str], dispatchers: int, approvals: int) -> tuple[float, list[float]]:
    """Start the dispatchers, release the held partitions, time the drain; returns the
    seconds and each dispatcher's CPU seconds over the drain."""
    from sqlalchemy import func, update  # noqa: PLC0415
    from sqlmodel import col, select  # noqa: PLC0415

    from api.settings import Settings  # noqa: PLC0415
    from infra.db import Database  # noqa: PLC0415
    from infra.outbox import OutboxEvent  # noqa: PLC0415
    from infra.outbox_partitions import OutboxDispatcher, OutboxPartition  # noqa: PLC0415

    db = Database(Settings.from_env(env).database_url)
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "api",
            "dispatch",
            "--poll-interval",
            "0.2",
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,  # (Ctrl-C reaches them through the finally below)
        )  # fmt: skip
        for _ in range(dispatchers)
    ]
    try:
        while True:  # every dispatcher registered (they hold nothing yet)
            async with db.session() as session:
                live = (
                    await session.exec(select(func.count()).select_from(OutboxDispatcher))
                ).one()
            if live >= dispatchers:
                break
            await asyncio.sleep(0.1)
        cpu_before = [_cpu_seconds(p.pid) for p in procs]
        began = time.perf_counter()
        async with db.transaction() as session:
            await session.execute(update(OutboxPartition).values(holder=None, expires_at=None))
        while True:
            async with db.session() as session:
                left = (
                    await session.exec(
                        select(func.count()).where(col(OutboxEvent.dispatched_at).is_(None))
                    )
                ).one()
            if left == 0:
                break
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - began
        cpu = [_cpu_seconds(p.pid) - b for p, b in zip(procs, cpu_before, strict=True)]
        return elapsed, cpu
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                await asyncio.wait_for(p.wait(), 30)
            except TimeoutError:
                p.kill()
                await p.wait()
        await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", required=True, help="an empty PostgreSQL database")
    parser.add_argument("--approvals", type=int, default=2000)
    parser.add_argument("--dispatchers", default="1,2")
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--partners", type=int, default=200)
    args = parser.parse_args()
    if not args.database_url.startswith("postgresql"):
        parser.error("the outbox's partitions are PostgreSQL's: give a PostgreSQL --database-url")
    with tempfile.TemporaryDirectory(prefix="cbscale-") as tmp, bench_redis() as redis_url:
        env = {
            **os.environ, "CHANNELBOARD_ENV": "test", "CHANNELBOARD_VAR_DIR": tmp,
            "CHANNELBOARD_DATABASE_URL": args.database_url, "CHANNELBOARD_REDIS_URL": redis_url,
            "CHANNELBOARD_REDIS_NAMESPACE": f"scale-{uuid.uuid4().hex[:6]}",
            "CHANNELBOARD_DISPATCH": "external", "CHANNELBOARD_LOG_LEVEL": "warning",
            "CHANNELBOARD_OUTBOX_PARTITIONS": str(args.partitions),
            "CHANNELBOARD_SIGNALS_DAILY_INTERVAL_SECONDS": "0",
        }  # fmt: skip
        asyncio.run(seed(args.database_url, 10, args.partners))
        asyncio.run(add_program(env))
        print(
            f"{args.approvals} approvals, {args.partners} partners, tiered program, "
            f"{args.partitions} partitions, cores: {os.cpu_count()}"
        )
        for count in (int(n) for n in args.dispatchers.split(",")):
            asyncio.run(backlog(env, args.approvals, args.partitions))
            elapsed, cpu = asyncio.run(drain(env, count, args.approvals))
            shares = ", ".join(f"{c / elapsed:.0%}" for c in cpu)
            print(
                f"{count} dispatcher(s): {args.approvals / elapsed:7.1f} approvals/s "
                f"({elapsed:.1f} s); CPU of a core each: {shares}"
            )


if __name__ == "__main__":
    main()
