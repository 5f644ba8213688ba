"""Benchmark: import N billing changes (default 1,000,000) from a CSV file, as
`channelboard subscriptions import` does, over a vendor's existing subscriptions; then
import the same file again (every row already applied: unchanged).

    createdb -h 127.0.0.1 -U postgres cb_renewal_bench
    .venv/bin/python -m benchmarks.renewal_import \\
        --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/cb_renewal_bench

The database is migrated to head first; each run uses a new vendor. The subscriptions the
file changes (N / 4 by default, each renewed, expanded, renewed again and contracted:
four rows) are seeded with COPY, and the CSV written, before the clock starts: reading,
checking, applying and writing the file (change rows, outbox events, subscription
states) is timed, in one transaction, as the command runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from api import migrations
from infra.clock import SystemClock
from infra.db import Database
from infra.ids import new_id
from partners import service as partners_service
from partners.roles import Principal, Role
from subscriptions import imports
from subscriptions.changes import add_months

START = datetime(2025, 1, 15, tzinfo=UTC)


async def seed(
    db: Database, vendor_id: uuid.UUID, partners: list[uuid.UUID], n: int
) -> list[uuid.UUID]:
    now = datetime.now(UTC)
    accounts = [(new_id(), vendor_id, f"Customer {i}", f"customer {i}", "", now) for i in range(n)]
    ends = add_months(START, 12)
    subs = [
        (new_id(), vendor_id, partners[i % len(partners)], None, accounts[i][0], "BENCH-CLOUD",
         "EMEA", 12, 120_000, "USD", "ACTIVE", 0, START, START, ends, None, now, now)
        for i in range(n)
    ]  # fmt: skip
    async with db.transaction() as session:
        raw = await (await session.connection()).get_raw_connection()
        driver: Any = raw.driver_connection
        await driver.copy_records_to_table(
            "customer_account", records=accounts,
            columns=["id", "vendor_id", "name", "name_key", "domain", "created_at"],
        )  # fmt: skip
        await driver.copy_records_to_table(
            "subscription", records=subs,
            columns=["id", "vendor_id", "partner_id", "rep_user_id", "account_id", "sku",
                     "region", "term_months", "amount_minor", "currency", "status", "renewals",
                     "starts_at", "term_start", "ends_at", "cancelled_at", "created_at",
                     "updated_at"],
        )  # fmt: skip
    return [s[0] for s in subs]


def write_csv(path: Path, subscriptions: list[uuid.UUID], rows: int) -> None:
    """Four changes per subscription, in date order: renew, expand, renew, contract."""
    plan = (
        ("RENEWED", "2026-01-10", ""), ("EXPANDED", "2026-03-01", "1500.00"),
        ("RENEWED", "2027-01-10", ""), ("CONTRACTED", "2027-04-01", "1300.00"),
    )  # fmt: skip
    written = 0
    with path.open("w", encoding="utf-8") as out:
        out.write("external_id,subscription,kind,effective_at,amount,currency,term_months\n")
        for step, (kind, day, amount) in enumerate(plan):
            for i, sub in enumerate(subscriptions):
                if written == rows:
                    return
                out.write(f"bill-{step}-{i},{sub},{kind},{day},{amount},,\n")
                written += 1


async def run(url: str, rows: int) -> None:
    await migrations.upgrade(url)
    db = Database(url)
    clock = SystemClock()
    try:
        async with db.transaction() as session:
            slug = f"bench-{uuid.uuid4().hex[:8]}"
            vendor = await partners_service.create_vendor(session, clock, name=slug, slug=slug)
            partners = [
                (await partners_service.create_partner(
                    session, clock, vendor_id=vendor.id, name=f"Partner {n}", region="EMEA"
                )).id
                for n in range(20)
            ]  # fmt: skip
        admin = Principal(vendor_id=vendor.id, role=Role.VENDOR_ADMIN)
        started = time.perf_counter()
        subscriptions = await seed(db, vendor.id, partners, (rows + 3) // 4)
        print(
            f"seeded {len(subscriptions):,} subscriptions in {time.perf_counter() - started:.1f} s"
        )
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "billing.csv"
            write_csv(path, subscriptions, rows)
            size = path.stat().st_size
            print(f"database: {db.engine.dialect.name}; file: {rows:,} rows, {size / 1e6:.1f} MB")
            for label in ("first import", "same file again"):
                started, cpu = time.perf_counter(), time.process_time()
                async with db.transaction() as session:
                    with path.open("rb") as source:
                        report = await imports.import_changes(
                            session, admin, clock, source=source, filename=path.name
                        )
                elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
                print(
                    f"{label:>16}: {elapsed:6.1f} s  ({rows / elapsed:,.0f} rows/s, this "
                    f"process's CPU {cpu:.1f} s)  "
                    f"changes {report.inserted:,}, subscriptions {report.updated:,}, "
                    f"unchanged {report.unchanged:,}, rejected {report.rejected:,}"
                )
    finally:
        await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    if not args.database_url.startswith("postgresql"):
        parser.error("the subscriptions are seeded with COPY: give a PostgreSQL --database-url")
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("subscriptions.imports").setLevel(logging.INFO)
    asyncio.run(run(args.database_url, args.rows))


if __name__ == "__main__":
    main()
