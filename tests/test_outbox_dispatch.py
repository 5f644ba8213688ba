"""The dispatcher runs handlers that write in transactions of their own (as earnings'
crediting does) and still marks every event dispatched, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

from sqlmodel import col, select

from infra.clock import OffsetClock
from infra.db import Database
from infra.outbox import Dispatcher, OutboxEvent, record_event
from tests.support import Tenant


async def test_handler_writing_in_its_own_transaction_is_dispatched(
    db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    dispatcher = Dispatcher(db, clock)
    seen: list[str] = []

    async def follow_up(event: OutboxEvent) -> None:
        seen.append(event.type)
        async with db.transaction() as session:
            await record_event(
                session, clock, vendor_id=event.vendor_id, type="Second",
                aggregate_id=event.aggregate_id, payload={},
            )  # fmt: skip

    async def second(event: OutboxEvent) -> None:
        seen.append(event.type)

    dispatcher.register("First", follow_up)
    dispatcher.register("Second", second)
    async with db.transaction() as session:
        await record_event(
            session, clock, vendor_id=tenant.vendor.id, type="First",
            aggregate_id=uuid.uuid4(), payload={},
        )  # fmt: skip

    assert await dispatcher.dispatch_pending() == 2
    assert seen == ["First", "Second"]
    async with db.session() as session:
        pending = await session.exec(
            select(OutboxEvent).where(col(OutboxEvent.dispatched_at).is_(None))
        )
        assert list(pending) == []
