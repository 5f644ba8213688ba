"""The interface the incentive rules build on: the catalogue, ``values_at`` and the
``SignalsChanged`` events recorded when a snapshot changes."""

from __future__ import annotations

import re

from sqlmodel import col, select

from infra.clock import OffsetClock
from infra.db import Database
from infra.outbox import OutboxEvent
from schema.context import Services
from signals.definitions import DEFINITIONS, Unit, Visibility
from signals.events import SIGNALS_CHANGED, SignalsChanged
from signals.snapshots import values_at
from tests.earnings.scenarios import make_program, seed_products, worked_rules
from tests.factories import Tenant, approve_sale, dispatch


def test_every_definition_is_named_and_explained() -> None:
    for name, definition in DEFINITIONS.items():
        assert re.fullmatch(r"[a-z][a-z0-9_]*", name)
        assert definition.name == name
        assert definition.label
        assert definition.description.endswith(".")
    vendor_only = {n for n, d in DEFINITIONS.items() if d.visibility is Visibility.VENDOR_ONLY}
    assert {
        "gross_margin", "contribution_margin", "payout_ratio", "risk_flags_30d",
        "concentration_alert_open",
    } == vendor_only  # fmt: skip
    assert DEFINITIONS["revenue_7d"].unit is Unit.MONEY


async def test_values_at_reads_the_day_and_changes_are_announced(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    await seed_products(db, clock, tenant)
    await make_program(db, clock, tenant, worked_rules(clock.now()))
    await approve_sale(db, clock, tenant, amount=1_000_00, sku="NW-AP-6E")
    await approve_sale(db, clock, tenant, partner=1, amount=500_00, sku="NW-AP-6E")
    while await dispatch(services):
        pass
    today = clock.now().date()
    async with db.session() as session:
        values = await values_at(session, tenant.vendor.id, today)
        only = await values_at(session, tenant.vendor.id, today, [tenant.partners[1].id])
        changed = list(
            await session.exec(
                select(OutboxEvent)
                .where(OutboxEvent.type == SIGNALS_CHANGED)
                .order_by(col(OutboxEvent.id))
            )
        )
    first, second = (values[p.id] for p in tenant.partners)
    assert set(first) == set(DEFINITIONS)
    assert (first["revenue_7d"], second["revenue_7d"]) == (1_000_00, 500_00)
    assert first["activated"] is True
    assert first["days_since_last_sale"] == 0
    assert first["revenue_growth_wow"] is None  # no revenue the week before
    assert list(only) == [tenant.partners[1].id]
    # (The daily job's loop may have announced first snapshots too: only today's count.)
    announced = [SignalsChanged.parse(e.payload) for e in changed]
    sold = [c for c in announced if c.day == today and "revenue_7d" in c.names]
    assert {c.partner_id for c in sold} == {p.id for p in tenant.partners}
