"""Partitions change hands during a pass, not only between passes (PostgreSQL).

A pass reads page after page for as long as a backlog or a steady stream lasts, so a
dispatcher that took every partition while alone (the first one up, or the survivor of a
crash) must give back its excess while it runs: a second dispatcher, added because the
first is behind or restarted after a crash, gets its share at once instead of waiting for
the load to end. Handing over keeps the guarantees: each event handled once, each
ordering key's events in commit order. A CLI command's one-off pass hands everything back
as soon as a dispatcher starts."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest
from sqlalchemy import select

from api.settings import Settings
from infra.clock import OffsetClock
from infra.db import Database
from infra.outbox import Dispatcher, Handler, OutboxEvent, record_events
from infra.outbox_partitions import OutboxPartition, PartitionLeases
from schema.context import Services
from tests.factories import Tenant
from tests.support import eventually

PARTITIONS = 8
EVENTS = 1500  # at 10 ms each: a backlog of 15 s for one dispatcher
AGGREGATES = 40


def _postgres_only(settings: Settings) -> None:
    if settings.database_url.startswith("sqlite"):
        pytest.skip("partition leases need PostgreSQL (SQLite runs one dispatcher at a time)")


async def test_a_dispatcher_that_joins_during_a_backlog_gets_a_share(
    services: Services, settings: Settings, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    _postgres_only(settings)
    # (dispatcher, aggregate, seq), in the order handled: both run on this event loop.
    handled: list[tuple[str, uuid.UUID, int]] = []

    def handler(name: str) -> Handler:
        async def handle(event: OutboxEvent) -> None:
            handled.append((name, event.aggregate_id, event.payload["seq"]))
            await asyncio.sleep(0.01)  # 10 ms of work an event

        return handle

    a = Dispatcher(db, clock, partitions=PARTITIONS)
    b = Dispatcher(db, clock, partitions=PARTITIONS)
    a.register("ProbeBacklog", handler("a"))
    b.register("ProbeBacklog", handler("b"))
    aggregates = [uuid.uuid4() for _ in range(AGGREGATES)]
    async with services.outbox.paused():  # the app's own dispatcher stays out of it
        async with db.transaction() as session:
            await record_events(session, clock, [
                (tenant.vendor.id, "ProbeBacklog", aggregates[n % AGGREGATES], {"seq": n})
                for n in range(EVENTS)
            ])  # fmt: skip
        tasks = [asyncio.create_task(a.run(poll_interval=0.2))]
        try:

            async def a_is_in_its_pass() -> bool:
                return bool(handled)

            await eventually(a_is_in_its_pass, within=60)
            tasks.append(asyncio.create_task(b.run(poll_interval=0.2)))

            async def drained() -> bool:
                return len(handled) >= EVENTS

            await eventually(drained, within=180)
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    by = {name: sum(1 for n, _, _ in handled if n == name) for name in ("a", "b")}
    assert by["b"] > 0, f"b got no partition during a's pass: {by}"
    assert by["a"] > 0
    # Once each, and each aggregate's events in commit order across the handover.
    assert sorted(seq for _, _, seq in handled) == list(range(EVENTS))
    for aggregate in aggregates:
        seqs = [seq for _, agg, seq in handled if agg == aggregate]
        assert seqs == sorted(seqs)


async def test_a_one_off_pass_hands_its_partitions_back_when_a_dispatcher_starts(
    settings: Settings, db: Database
) -> None:
    _postgres_only(settings)
    one_off = PartitionLeases(db, PARTITIONS)
    assert await one_off.claim(join=False) == tuple(range(PARTITIONS))  # none runs
    dispatcher = PartitionLeases(db, PARTITIONS)
    assert await dispatcher.claim() == ()  # it is live now; the one-off holds all
    assert await one_off.claim(join=False) == ()  # its next claim mid-pass: all back
    assert await dispatcher.claim() == tuple(range(PARTITIONS))
    async with db.session() as session:
        holders = set((await session.execute(select(OutboxPartition.holder))).scalars())  # type: ignore[call-overload]
    assert holders == {dispatcher.holder}
