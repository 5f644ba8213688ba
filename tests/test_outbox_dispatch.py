"""The outbox dispatcher with handlers that write to the database themselves."""

from __future__ import annotations

import uuid

from sqlmodel import select

from infra.clock import OffsetClock
from infra.db import Database
from infra.outbox import OutboxEvent, record_event
from partners.models import Vendor
from schema.context import Services
from tests.support import Tenant


async def test_a_handler_writing_in_its_own_transaction_does_not_block_dispatch(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    dispatcher = services.outbox  # the app's own, so its poll loop cannot race this test
    renamed: list[uuid.UUID] = []

    async def handler(event: OutboxEvent) -> None:
        async with db.transaction() as session:
            vendor = await session.get(Vendor, event.vendor_id)
            assert vendor is not None
            vendor.name = "renamed by a handler"
            session.add(vendor)
        renamed.append(event.id)

    dispatcher.register("ProbeWrite", handler)
    async with db.transaction() as session:
        event = await record_event(
            session, clock, vendor_id=tenant.vendor.id, type="ProbeWrite",
            aggregate_id=uuid.uuid4(), payload={},
        )  # fmt: skip
    await dispatcher.dispatch_pending()
    assert renamed == [event.id]
    async with db.session() as session:
        stored = (await session.exec(select(OutboxEvent).where(OutboxEvent.id == event.id))).one()
        assert stored.dispatched_at is not None
