"""Crediting rules through the services: one worked example per program feature, amounts
computed by hand in the comments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import col, select

from deal_registration.events import Line
from earnings.models import EarningEntry, EntryKind
from infra.clock import OffsetClock
from infra.db import Database
from schema.context import Services
from tests import earnings_support as es
from tests.support import Tenant

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
async def program(db: Database, clock: OffsetClock, tenant: Tenant) -> None:
    clock.freeze(T0)
    await es.seed_products(db, clock, tenant)
    await es.make_program(db, clock, tenant, es.worked_rules(T0 - timedelta(days=1)))


async def entries_of(db: Database, event_id: object) -> dict[tuple[EntryKind, str], int]:
    async with db.session() as session:
        rows = await session.exec(
            select(EarningEntry)
            .where(EarningEntry.source_event_id == event_id)
            .order_by(col(EarningEntry.id))
        )
        return {(e.kind, e.line_key): e.amount_minor for e in rows}


@pytest.mark.usefixtures("program")
async def test_lines_use_sku_category_and_default_rates_plus_spiff(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    event = await es.sale(
        db, clock, tenant, 671_400,
        lines=[
            Line("NW-AP-6E", 2, 91_800),  # wireless: default 8% of 918.00 = 73.44
            Line("NW-FW-500", 1, 459_900),  # security: 10% of 4,599.00 = 459.90
            Line("NW-CARE-3Y", 3, 119_700),  # 50.00 per unit x 3 = 150.00
        ],
    )  # fmt: skip
    await es.credit_all(services)
    assert await entries_of(db, event.id) == {
        (EntryKind.COMMISSION, "0:NW-AP-6E"): 7_344,
        (EntryKind.COMMISSION, "1:NW-FW-500"): 45_990,
        (EntryKind.COMMISSION, "2:NW-CARE-3Y"): 15_000,
        (EntryKind.SPIFF, "0:NW-AP-6E:0"): 5_000,  # 25.00 x 2 units in EMEA
    }  # 6,714.00 is below Silver's 10,000.00: no uplift. Total 733.34.
