"""CPU per approval through the outbox dispatcher with every handler the app registers
(live notices, contest scoring, earnings crediting and its notices), by run size: how many
approvals were committed before each `dispatch_pending()`.

    .venv/bin/python -m benchmarks.dispatch_cost [--approvals 200] [--runs 1,5,20]
        [--program] [--database-url URL_OF_AN_EMPTY_DATABASE]

The fan-out benchmark's tenant (20 partners, one live contest); `--program` adds an
earnings program with tiers, as a vendor paying commissions would have. CPU is the whole
process's (the SQLite driver works in a thread of its own), counted only around the
dispatching. Prints figures; not part of the test run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import time
import uuid
from pathlib import Path

from benchmarks.common import bench_redis
from benchmarks.leaderboard_fanout import add_program, seed


async def measure(env: dict[str, str], approvals: int, run: int) -> float:
    """CPU seconds per approval, dispatching after every ``run`` commits."""
    from sqlmodel import select  # noqa: PLC0415

    from api.cli.wiring import wiring  # noqa: PLC0415
    from api.settings import Settings  # noqa: PLC0415
    from catalogue import demo as catalogue_demo  # noqa: PLC0415
    from infra.clock import SystemClock  # noqa: PLC0415
    from leaderboards.demo import approve_demo_sale  # noqa: PLC0415
    from partners.models import Partner, Vendor  # noqa: PLC0415

    clock = SystemClock()
    async with wiring(Settings.from_env(env)) as w:
        async with w.db.transaction() as session:
            vendor = (await session.exec(select(Vendor))).one()
            products = list((await catalogue_demo.seed(session, clock, vendor)).values())
        async with w.db.session() as session:
            partners = list(await session.exec(select(Partner)))
        await w.outbox.dispatch_pending()  # the set-up's own events
        cpu = 0.0
        for _ in range(approvals // run):
            for _ in range(run):
                async with w.db.transaction() as session:
                    await approve_demo_sale(
                        session, clock, vendor_id=vendor.id, partner=random.choice(partners),
                        rep=None, product=random.choice(products), units=2,
                    )  # fmt: skip
            began = time.process_time()
            await w.outbox.dispatch_pending()  # and the EarningsChanged events it records
            cpu += time.process_time() - began
        return cpu / (approvals // run * run)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--approvals", type=int, default=200)
    parser.add_argument("--runs", default="1,5,20")
    parser.add_argument("--program", action="store_true", help="add an earnings program")
    parser.add_argument("--database-url", help="an empty database (default: temporary SQLite)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cbdispatch-") as tmp, bench_redis() as redis_url:
        db_url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'dispatch.db'}"
        env = {
            **os.environ, "CHANNELBOARD_ENV": "test", "CHANNELBOARD_VAR_DIR": tmp,
            "CHANNELBOARD_DATABASE_URL": db_url, "CHANNELBOARD_REDIS_URL": redis_url,
            "CHANNELBOARD_REDIS_NAMESPACE": f"dispatch-{uuid.uuid4().hex[:6]}",
        }  # fmt: skip
        asyncio.run(seed(db_url, 100, 20))
        if args.program:
            asyncio.run(add_program(env))
        print(f"database: {db_url.split(':')[0]}; earnings program: {args.program}")
        for run in (int(r) for r in args.runs.split(",")):
            per = asyncio.run(measure(env, args.approvals, run))
            print(f"runs of {run:>3}: {per * 1000:6.2f} ms CPU per approval dispatched")


if __name__ == "__main__":
    main()
