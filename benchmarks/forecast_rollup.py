"""The forecast roll-up over 10,000 partners and 100,000 open deals: p50/p99 of the query
(``forecasts.rollup.rollup``: the partners, their forecasts, their open deals closing in the
quarter weighted by stage, and their revenue so far, grouped by partner, region or group).

    createdb -h 127.0.0.1 -U postgres cb_forecast_bench
    .venv/bin/python -m benchmarks.forecast_rollup \\
        --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/cb_forecast_bench \\
        [--partners 10000] [--deals 100000] [--sources 50000] [--runs 50]

Seeds a fresh vendor (bulk inserts), then times the roll-up as a vendor admin (every
partner) and as a channel manager (1,000 assigned partners). Prints figures; not part of
the test run.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import insert, text

from api import migrations
from benchmarks.common import summary_ms
from deal_registration.registrations.models import DealRegistration, DealStatus
from earnings.models import CreditedSource, SourceType
from forecasts.models import PartnerForecast
from forecasts.quarters import Quarter
from forecasts.rollup import RollupBy, rollup
from infra.clock import FrozenClock
from infra.db import Database
from infra.ids import new_id
from partners import service as partners_service
from partners.group_models import PartnerGroup, PartnerGroupMembership
from partners.models import ManagerAssignment, Partner
from partners.roles import Principal, Role

REGIONS = ("EMEA", "NA", "APAC", "LATAM")
STAGES = (DealStatus.SUBMITTED, DealStatus.UNDER_REVIEW, DealStatus.APPROVED)
CHUNK = 5_000


async def bulk(db: Database, table: Any, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), CHUNK):
        async with db.transaction() as session:
            await session.execute(insert(table), rows[start : start + CHUNK])


async def seed(
    db: Database, clock: FrozenClock, quarter: Quarter, partners: int, deals: int, sources: int
) -> tuple[Principal, Principal]:
    now = clock.now()
    rng = random.Random(14)
    async with db.transaction() as session:
        vendor = await partners_service.create_vendor(
            session, clock, name="Rollup bench", slug=f"rollup-{uuid.uuid4().hex[:6]}"
        )
        manager = await partners_service.create_user(
            session, clock, vendor_id=vendor.id, email=f"m-{uuid.uuid4().hex[:6]}@bench.example",
            role=Role.CHANNEL_MANAGER, display_name="Manager",
        )  # fmt: skip
    partner_rows = [
        {"id": new_id(), "vendor_id": vendor.id, "name": f"Partner {i:05d}", "tier": "SELECT",
         "region": REGIONS[i % len(REGIONS)], "status": "ACTIVE", "internal_notes": "",
         "created_at": now, "legal_name": "", "contacts": [], "tags": []}
        for i in range(partners)
    ]  # fmt: skip
    # SQLModel's stubs do not declare a table model's __table__ (set by SQLAlchemy).
    await bulk(db, Partner.__table__, partner_rows)  # type: ignore[attr-defined]
    ids = [p["id"] for p in partner_rows]
    await bulk(db, ManagerAssignment.__table__, [  # type: ignore[attr-defined]
        {"id": new_id(), "vendor_id": vendor.id, "manager_id": manager.id, "partner_id": pid,
         "created_at": now}
        for pid in ids[:1_000]
    ])  # fmt: skip
    groups = [
        {"id": new_id(), "vendor_id": vendor.id, "name": f"Group {g}", "description": "",
         "rule": [], "created_at": now, "updated_at": now}
        for g in range(10)
    ]  # fmt: skip
    await bulk(db, PartnerGroup.__table__, groups)  # type: ignore[attr-defined]
    await bulk(db, PartnerGroupMembership.__table__, [  # type: ignore[attr-defined]
        {"id": new_id(), "vendor_id": vendor.id, "group_id": g["id"], "partner_id": pid,
         "joined_at": now - timedelta(days=1), "join_reason": "bench", "joined_by": "bench"}
        for g in groups for pid in rng.sample(ids, partners // 5)
    ])  # fmt: skip
    await bulk(db, PartnerForecast.__table__, [  # type: ignore[attr-defined]
        {"id": new_id(), "vendor_id": vendor.id, "partner_id": pid, "quarter": quarter.key,
         "currency": "USD", "commit_minor": c, "best_case_minor": c * 2,
         "lines": [{"product_line": "Other", "commit_minor": c, "best_case_minor": c * 2}],
         "revision": 1, "created_at": now, "updated_at": now}
        for pid in ids if (c := rng.randint(0, 1_000_000_00)) >= 0
    ])  # fmt: skip
    span = (quarter.ends_at - quarter.starts_at).days
    deal_rows = []
    for i in range(deals):
        status = STAGES[i % len(STAGES)]
        deal_rows.append({
            "id": new_id(), "vendor_id": vendor.id, "partner_id": ids[i % partners],
            "status": status.value, "customer_name": f"Customer {i}",
            "customer_name_key": f"customer {i}", "customer_domain": f"c{i}.example",
            "customer_country": "DE", "customer_region": "", "contact_name": "",
            "contact_email": "", "estimated_value_minor": rng.randint(1_000_00, 500_000_00),
            "currency": "USD",
            # About two thirds close in the quarter, the rest in the next one.
            "expected_close_date": (
                quarter.starts_at + timedelta(days=rng.randint(0, span * 3 // 2))
            ).date(),
            "notes": "", "big_deal": False, "is_protected": False, "submitted_at": now,
            "expires_at": now + timedelta(days=365) if status is DealStatus.APPROVED else None,
            "extensions_granted": 0, "decision_reason": "", "override_reason": "",
            "request_hash": "", "created_at": now, "updated_at": now,
        })  # fmt: skip
    await bulk(db, DealRegistration.__table__, deal_rows)  # type: ignore[attr-defined]
    await bulk(db, CreditedSource.__table__, [  # type: ignore[attr-defined]
        {"id": new_id(), "vendor_id": vendor.id, "partner_id": ids[i % partners],
         "source_event_id": uuid.uuid4(), "source_type": SourceType.SALE_APPROVED.value,
         "region": "", "currency": "USD", "revenue_minor": rng.randint(100_00, 50_000_00),
         "margin_minor": 0, "lines": [], "note": "",
         "effective_at": quarter.starts_at + timedelta(hours=rng.randint(0, 24 * 30)),
         "credited_at": quarter.starts_at + timedelta(days=31)}
        for i in range(sources)
    ])  # fmt: skip
    admin = Principal(vendor_id=vendor.id, role=Role.VENDOR_ADMIN, operator="bench")
    managing = Principal(vendor_id=vendor.id, role=Role.CHANNEL_MANAGER, user_id=manager.id)
    return admin, managing


async def time_rollup(
    db: Database, clock: FrozenClock, principal: Principal, quarter: Quarter, by: RollupBy,
    runs: int,
) -> tuple[list[float], int]:  # fmt: skip
    samples: list[float] = []
    rows = 0
    for i in range(runs + 3):
        async with db.read_session() as session:
            t = time.perf_counter()
            result = await rollup(
                session, principal, clock, quarter=quarter.key, currency="USD", by=by
            )
            elapsed = time.perf_counter() - t
        if i >= 3:  # warm-up runs are not counted
            samples.append(elapsed)
        rows = len(result.rows)
    return samples, rows


async def main(url: str, partners: int, deals: int, sources: int, runs: int) -> None:
    await migrations.upgrade(url)
    db = Database(url)
    quarter = Quarter(2027, 1)
    clock = FrozenClock(quarter.starts_at + timedelta(days=40))
    try:
        t = time.perf_counter()
        admin, manager = await seed(db, clock, quarter, partners, deals, sources)
        print(f"seeded {partners:,} partners, {deals:,} open deals, {sources:,} credited "
              f"sales in {time.perf_counter() - t:.1f} s")  # fmt: skip
        if url.startswith("postgresql"):
            async with db.transaction() as session:
                for table in ("partner", "deal_registration", "partner_forecast", "earning_source",
                              "partner_group_membership", "manager_assignment"):  # fmt: skip
                    await session.execute(text(f"ANALYZE {table}"))
        for who, principal in (("vendor admin", admin), ("channel manager", manager)):
            for by in RollupBy:
                samples, rows = await time_rollup(db, clock, principal, quarter, by, runs)
                print(f"{who:15} by {by.value:8} ({rows:>6,} rows): {summary_ms(samples)}")
    finally:
        await db.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--partners", type=int, default=10_000)
    parser.add_argument("--deals", type=int, default=100_000)
    parser.add_argument("--sources", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(main(args.database_url, args.partners, args.deals, args.sources, args.runs))
