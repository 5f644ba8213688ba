"""Crediting throughput and summary latency on a fresh database.

    .venv/bin/python -m benchmarks.earnings_ledger [--sales 2000] [--run 20]
        [--url sqlite+aiosqlite:///...]

Prints figures; not part of the test run.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from api import migrations
from api.composition import build_claim_signals
from deal_registration.events import Line, SaleApproved
from earnings import ledger, programs, service
from earnings.programs import BaseRate, Rules, Spiff, Tier
from earnings.repository import Scope
from infra.clock import FrozenClock
from infra.db import Database
from infra.outbox import OutboxEvent, record_event
from partners import service as partners_service
from partners.roles import Principal, Role


async def main(url: str, sales: int, run: int) -> None:
    await migrations.upgrade(url)
    db = Database(url)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    clock = FrozenClock(start)
    signals = build_claim_signals()
    async with db.transaction() as s:
        vendor = await partners_service.create_vendor(
            s, clock, name="Bench", slug=f"bench-{uuid.uuid4().hex[:6]}"
        )
        partner = await partners_service.create_partner(
            s, clock, vendor_id=vendor.id, name="P", region="EMEA"
        )
        batched = await partners_service.create_partner(
            s, clock, vendor_id=vendor.id, name="Q", region="EMEA"
        )
        admin = Principal(vendor_id=vendor.id, role=Role.VENDOR_ADMIN)
        rules = Rules(
            base_rates=(BaseRate(800), BaseRate(1_000, category="security")),
            tiers=(Tier("Silver", 1_000_000, 100), Tier("Gold", 2_500_000, 200, None, 1_000)),
            spiffs=(Spiff("NW-AP-6E", 2_500, start, start + timedelta(days=365), "EMEA"),),
        )
        await programs.create_program(
            s, admin, clock, name="Bench", currency="USD", rules=rules, effective_from=start
        )

    async def record_sales(partner_id: uuid.UUID) -> list[OutboxEvent]:
        recorded = []
        async with db.transaction() as s:
            for i in range(sales):
                clock.set(start + timedelta(minutes=30 * i))
                sale = SaleApproved(
                    claim_id=uuid.uuid4(), partner_id=partner_id, rep_user_id=None,
                    region="EMEA", currency="USD", amount_minor=91_800,
                    lines=[Line("NW-AP-6E", 2, 91_800)], sold_at=clock.now(),
                    approved_at=clock.now(),
                )  # fmt: skip
                recorded.append(
                    await record_event(
                        s,
                        clock,
                        vendor_id=vendor.id,
                        type=sale.type,
                        aggregate_id=sale.claim_id,
                        payload=sale.to_payload(),
                    )  # fmt: skip
                )
        return recorded

    events = await record_sales(partner.id)
    runs = await record_sales(batched.id)
    began = time.perf_counter()
    written = 0
    for event in events:
        clock.set(event.occurred_at)
        written += len(await ledger.credit(db, clock, event, signals=signals))
    credit_s = time.perf_counter() - began
    began = time.perf_counter()
    for i in range(0, len(runs), run):
        clock.set(runs[i].occurred_at)
        await ledger.credit_many(db, clock, runs[i : i + run], signals=signals)
    runs_s = time.perf_counter() - began
    began = time.perf_counter()
    again = sum([len(await ledger.credit(db, clock, e, signals=signals)) for e in events[:200]])
    recredit_s = time.perf_counter() - began
    scope = Scope(vendor.id, partner.id)
    end = clock.now() + timedelta(days=1)
    timings = []
    for _ in range(20):
        began = time.perf_counter()
        async with db.session() as s:
            summary = await service.summary(
                s, admin, clock, scope=scope, start=start, end=end, signals=signals
            )
        timings.append(time.perf_counter() - began)
    timings.sort()
    await db.dispose()
    lines = [
        f"database: {url.split(':')[0]}",
        f"credited {sales} sales -> {written} entries in {credit_s:.2f}s "
        f"({sales / credit_s:.0f} sales/s, {1000 * credit_s / sales:.2f} ms each)",
        f"credited {sales} more in runs of {run} (the dispatcher's batches): "
        f"{sales / runs_s:.0f} sales/s, {1000 * runs_s / sales:.2f} ms each",
        f"re-crediting 200 credited events wrote {again} entries "
        f"({1000 * recredit_s / 200:.2f} ms each)",
        f"summary over {len(events)} sales ({written} entries): "
        f"median {1000 * timings[10]:.1f} ms, max {1000 * timings[-1]:.1f} ms; "
        f"earned {summary.earned_minor / 100:.2f}",
    ]
    print("\n".join(lines))  # noqa: T201


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--sales", type=int, default=2000)
    parser.add_argument("--url", default=None)
    parser.add_argument("--run", type=int, default=20, help="Events per credit_many call.")
    args = parser.parse_args()
    url = args.url or f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}"
    asyncio.run(main(url, args.sales, args.run))
