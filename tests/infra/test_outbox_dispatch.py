"""The outbox dispatcher with handlers that write to the database themselves."""

from __future__ import annotations

import contextlib
import uuid

from sqlalchemy import update
from sqlmodel import col, select

from infra.clock import OffsetClock
from infra.db import Database
from infra.outbox import Dispatcher, OutboxEvent, OutboxLease, record_event
from partners.models import Vendor
from schema.context import Services
from tests.factories import Tenant


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


async def test_batch_handlers_get_runs_in_commit_order_split_at_per_event_types(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    dispatcher = Dispatcher(db, clock)  # its own: what the app's dispatched is not seen
    seen: list[str] = []
    failures = [ConnectionError("redis went away")]

    async def batch(events: list[OutboxEvent]) -> None:
        seen.append("batch " + ",".join(e.payload["n"] for e in events))
        if "fail" in {e.payload["n"] for e in events} and failures:
            raise failures.pop()

    async def solo(event: OutboxEvent) -> None:
        seen.append("solo " + event.payload["n"])

    async def also(event: OutboxEvent) -> None:
        seen.append("also " + event.payload["n"])

    async with services.outbox.paused():  # the app's own dispatcher stays out of it
        dispatcher.register_batch(["ProbeBatchA", "ProbeBatchB"], batch)
        dispatcher.register("ProbeBatchA", also)
        dispatcher.register("ProbeSolo", solo)
        async with db.transaction() as session:
            for type_, n in [
                ("ProbeBatchA", "a1"), ("ProbeBatchB", "b1"), ("ProbeSolo", "s1"),
                ("ProbeBatchB", "b2"), ("ProbeBatchA", "fail"),
            ]:  # fmt: skip
                await record_event(
                    session, clock, vendor_id=tenant.vendor.id, type=type_,
                    aggregate_id=uuid.uuid4(), payload={"n": n},
                )  # fmt: skip
        with contextlib.suppress(ConnectionError):
            await dispatcher.dispatch_pending()
        assert seen == [
            "also a1", "batch a1,b1", "solo s1", "also fail", "batch b2,fail",
        ]  # fmt: skip
        async with db.session() as session:
            rows = await session.exec(
                select(OutboxEvent.payload, OutboxEvent.dispatched_at).where(
                    col(OutboxEvent.type).startswith("Probe")
                )
            )
            pending = sorted(p["n"] for p, at in rows if at is None)
        assert pending == ["b2", "fail"]  # the failed run, whole; the earlier ones are marked
        seen.clear()
        await dispatcher.dispatch_pending()
        assert seen == ["also fail", "batch b2,fail"]


async def test_a_dispatcher_that_lost_the_lease_marks_and_charges_nothing(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """Fencing, one dispatcher at a time: this one froze mid-pass past its lease, and
    another took the lease and runs those events again. Resumed, it must not mark them
    dispatched nor charge them a failure over the new holder's work, and its pass ends."""
    lease = OutboxLease.__table__  # type: ignore[attr-defined]
    broken = [False]  # True: the handler fails (an error of its own, charged)

    async def handle(event: OutboxEvent) -> None:
        # Frozen here past LEASE: another dispatcher took the lease meanwhile.
        async with db.transaction() as session:
            await session.execute(update(lease).values(holder="another:1:x"))
        if broken[0]:
            raise ValueError("the handler's own error")

    stale = Dispatcher(db, clock)
    stale.register("ProbeFence", handle)
    async with services.outbox.paused():
        async with db.transaction() as session:
            event = await record_event(
                session, clock, vendor_id=tenant.vendor.id, type="ProbeFence",
                aggregate_id=uuid.uuid4(), payload={},
            )  # fmt: skip
        for broken[0] in (False, True):
            async with db.transaction() as session:  # the other one's pass ended: free
                await session.execute(update(lease).values(holder=None, expires_at=None))
            assert await stale.dispatch_pending() == 0
            async with db.session() as session:
                row = await session.get(OutboxEvent, event.id, populate_existing=True)
            assert row is not None
            assert (row.dispatched_at, row.attempts) == (None, 0)
