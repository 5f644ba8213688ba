"""`channelboard serials import` (a real subprocess) and the demo data."""

from __future__ import annotations

import asyncio
import getpass
import os
import sys
from datetime import datetime
from pathlib import Path

import pytest
from sqlmodel import col, select

from api.cli.demo import seed_demo
from api.settings import Settings
from deal_registration.sales.models import SaleClaim, Serial
from infra.audit import AuditEntry
from infra.clock import OffsetClock
from infra.db import Database
from schema.context import Services
from tests.deal_registration.sales.scenarios import csv_bytes, registry_rows, seed_registry
from tests.factories import Tenant
from tests.support import DEMO_DATES, count_rows


async def _cli(settings: Settings, *args: str) -> tuple[int, str]:
    env = {**os.environ, "CHANNELBOARD_DATABASE_URL": settings.database_url,
           "CHANNELBOARD_VAR_DIR": str(settings.var_dir), "COLUMNS": "200"}  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "api", "serials", "import", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await process.communicate()
    return process.returncode or 0, output.decode()


@pytest.mark.slow
async def test_cli_import_reports_and_is_idempotent(
    settings: Settings, db: Database, clock: OffsetClock, tenant: Tenant, tmp_path: Path
) -> None:
    await seed_registry(db, clock, tenant, 2)  # the product, and two serials
    good = tmp_path / "ship.csv"
    good.write_bytes(csv_bytes(registry_rows(tenant, clock, 8)))
    code, output = await _cli(settings, str(good), "--vendor", tenant.vendor.slug)
    assert code == 0, output
    assert "8" in output
    assert "inserted" in output
    assert await count_rows(db, Serial) == 8

    bad = tmp_path / "bad.csv"
    bad.write_bytes(csv_bytes([*registry_rows(tenant, clock, 2, prefix="NEW"), ("x", "y")]))
    code, output = await _cli(settings, str(bad), "--vendor", tenant.vendor.slug)
    assert code == 1
    assert "WRONG_COLUMN_COUNT" in output
    assert "nothing was imported" in output
    assert await count_rows(db, Serial) == 8

    code, output = await _cli(settings, str(bad), "--vendor", tenant.vendor.slug,
                              "--good-rows-only")  # fmt: skip
    assert code == 0, output
    assert await count_rows(db, Serial) == 10

    code, output = await _cli(settings, str(good), "--vendor", "no-such-vendor")
    assert code == 2

    # One audit entry per applied import, naming the operator who ran the command.
    async with db.session() as session:
        entries = list(
            await session.exec(
                select(AuditEntry)
                .where(AuditEntry.action == "serial_import.applied")
                .order_by(col(AuditEntry.id))
            )
        )
    assert [e.after["rows"] for e in entries if e.after] == [2, 8, 3]
    assert {e.actor for e in entries[1:]} == {f"operator:{getpass.getuser()}"}


async def test_demo_seeds_registry_and_claims_idempotently(
    settings: Settings, db: Database, services: Services
) -> None:
    await _check_demo(settings, db, services)


@pytest.mark.slow
@pytest.mark.parametrize("when", DEMO_DATES, ids=lambda d: f"{d:%Y-%m-%dT%H:%M}")
async def test_demo_registry_and_claims_on_every_date(
    when: datetime, settings: Settings, db: Database, services: Services, clock: OffsetClock
) -> None:
    clock.freeze(when)
    await _check_demo(settings, db, services, clock)


async def _check_demo(
    settings: Settings, db: Database, services: Services, clock: OffsetClock | None = None
) -> None:
    await seed_demo(settings, clock)
    # Let the app's outbox dispatcher finish with the first run's events: on SQLite its
    # writes would otherwise race the second run's read-then-write transaction.
    await services.outbox.dispatch_pending()
    await seed_demo(settings, clock)
    async with db.session() as session:
        serial_rows = list(await session.exec(select(Serial).order_by(col(Serial.serial))))
        states = sorted(c.state.value for c in await session.exec(select(SaleClaim)))
    assert len(serial_rows) == 1000
    assert serial_rows[0].serial == "DEMO000001"
    assert serial_rows[499].partner_id != serial_rows[500].partner_id
    assert states == sorted(
        ["AUTO_APPROVED", "NEEDS_PROOF", "UNDER_REVIEW", "APPROVED", "REJECTED", "REVERSED"]
    )
