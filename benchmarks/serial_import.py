"""Benchmark: import N shipped serials (default 1,000,000) from a CSV file, as
`channelboard serials import` does, into a fresh vendor; then import the same file again
(everything unchanged) and once more with every 10th row changed.

    psql -h 127.0.0.1 -U postgres -c 'CREATE DATABASE channelboard_bench'
    .venv/bin/python -m benchmarks.serial_import \\
        --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/channelboard_bench

The database is migrated to head first; each run uses a new vendor, so it can be reused.
Writing the CSV file is not timed; reading, checking and merging it is.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from api import migrations
from catalogue import service as catalogue_service
from deal_registration.sales import serials
from infra.clock import SystemClock
from infra.db import Database
from partners import service as partners_service
from partners.roles import Principal, Role

SKUS = ("BENCH-ROUTER", "BENCH-SWITCH", "BENCH-AP")


def write_csv(path: Path, rows: int, partners: list[str], changed_every: int = 0) -> None:
    base = datetime.now(UTC) - timedelta(days=400)
    with path.open("w", encoding="utf-8") as out:
        out.write("serial,sku,shipped_to,region,shipped_at,status\n")
        for i in range(rows):
            region = "APAC" if changed_every and i % changed_every == 0 else "EMEA"
            shipped = (base + timedelta(days=i % 365)).date().isoformat()
            out.write(
                f"BN-{i:09d},{SKUS[i % 3]},{partners[i % len(partners)]},{region},{shipped},\n"
            )


async def run(url: str, rows: int) -> None:
    await migrations.upgrade(url)
    db = Database(url)
    clock = SystemClock()
    try:
        async with db.transaction() as session:
            slug = f"bench-{uuid.uuid4().hex[:8]}"
            vendor = await partners_service.create_vendor(session, clock, name=slug, slug=slug)
            names = [f"Partner {n}" for n in range(20)]
            for name in names:
                await partners_service.create_partner(
                    session, clock, vendor_id=vendor.id, name=name, region="EMEA"
                )
            admin = Principal(vendor_id=vendor.id, role=Role.VENDOR_ADMIN)
            for sku in SKUS:
                await catalogue_service.upsert_product(
                    session, admin, clock, sku=sku, name=sku, list_price_minor=10_000,
                    currency="USD",
                )  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp:
            plain, changed = Path(tmp) / "serials.csv", Path(tmp) / "serials-changed.csv"
            write_csv(plain, rows, names)
            write_csv(changed, rows, names, changed_every=10)
            size = plain.stat().st_size
            print(f"database: {db.engine.dialect.name}; file: {rows:,} rows, {size / 1e6:.1f} MB")
            for label, path in (("first import", plain), ("same file again", plain),
                                ("every 10th row changed", changed)):  # fmt: skip
                started = time.perf_counter()
                async with db.transaction() as session:
                    with path.open("rb") as source:
                        report = await serials.import_serials(
                            session, admin, clock, source=source, filename=path.name
                        )
                elapsed = time.perf_counter() - started
                print(
                    f"{label:>24}: {elapsed:6.1f} s  ({rows / elapsed:,.0f} rows/s)  "
                    f"inserted {report.inserted:,}, updated {report.updated:,}, "
                    f"unchanged {report.unchanged:,}, rejected {report.rejected:,}"
                )
    finally:
        await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("deal_registration.sales.serials").setLevel(logging.INFO)
    asyncio.run(run(args.database_url, args.rows))


if __name__ == "__main__":
    main()
