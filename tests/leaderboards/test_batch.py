"""Batched crediting through the outbox: many source events per handler call, exactly once
across replays, failures part-way and Redis losing the standings.

Each test holds the app's dispatcher (``paused``) and dispatches with a private one that
has only the leaderboard handlers, so every pending event goes through one batch call."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import func, update
from sqlmodel import col, select

from infra.clock import OffsetClock
from infra.db import Database
from infra.outbox import Dispatcher, OutboxEvent
from leaderboards.models import Metric
from leaderboards.scoring import SCORED_EVENT_TYPES
from schema.context import Services
from tests.factories import Tenant, approve_sale, create_contest, reverse_sale
from tests.leaderboards.test_scoring import board, credit_count

BatchProbe = Callable[[list[OutboxEvent]], Awaitable[None]]


@asynccontextmanager
async def private_dispatcher(
    services: Services, *, after: BatchProbe | None = None
) -> AsyncIterator[tuple[Dispatcher, list[int]]]:
    """A dispatcher with the leaderboard handlers (and ``after``, a batch handler run after
    them); yields it and the sizes of the batches the leaderboards received."""
    dispatcher = Dispatcher(services.db, services.clock)
    runtime = services.leaderboards
    sizes: list[int] = []

    async def credit(events: list[OutboxEvent]) -> None:
        sizes.append(len(events))
        await runtime.on_source_events(events)

    dispatcher.register_batch(SCORED_EVENT_TYPES, credit)
    if after is not None:
        dispatcher.register_batch(SCORED_EVENT_TYPES, after)
    async with services.outbox.paused():
        yield dispatcher, sizes


async def pending(db: Database) -> int:
    async with db.session() as session:
        count = await session.scalar(
            select(func.count()).where(col(OutboxEvent.dispatched_at).is_(None))
        )
        return int(count or 0)


async def undispatch(db: Database) -> None:
    """Mark every source event pending again, as a crash before the mark would leave them."""
    async with db.transaction() as session:
        await session.exec(
            update(OutboxEvent)  # type: ignore[call-overload]
            .where(col(OutboxEvent.type).in_(SCORED_EVENT_TYPES))
            .values(dispatched_at=None)
        )


async def test_a_batch_of_many_approvals_is_credited_once_and_a_replay_changes_nothing(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    contest = await create_contest(db, clock, tenant)
    units = await create_contest(db, clock, tenant, name="Units", metric=Metric.UNITS)
    async with private_dispatcher(services) as (dispatcher, sizes):
        await dispatcher.dispatch_pending()  # the contests' own events
        sizes.clear()
        for i in range(300):
            await approve_sale(db, clock, tenant, partner=i % 2, amount=(i % 7 + 1) * 100)
        assert await dispatcher.dispatch_pending() == 300
        assert sizes == [300]  # one handler call for the whole run
        assert await pending(db) == 0
        expected = {
            str(tenant.partners[p].id): sum((i % 7 + 1) * 100 for i in range(p, 300, 2))
            for p in (0, 1)
        }
        assert {pid: score for pid, _, score in await board(services, contest)} == expected
        assert [score for *_, score in await board(services, units)] == [150, 150]
        assert await credit_count(db, contest) == 300
        version = await services.leaderboards.boards.version(contest.id)

        await undispatch(db)
        assert await dispatcher.dispatch_pending() == 300
        assert await dispatcher.dispatch_pending() == 0
    assert {pid: score for pid, _, score in await board(services, contest)} == expected
    assert await credit_count(db, contest) == 300
    assert await services.leaderboards.boards.version(contest.id) == version


async def test_approval_and_reversal_in_one_batch_net_to_zero(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    contest = await create_contest(db, clock, tenant)
    async with private_dispatcher(services) as (dispatcher, sizes):
        await dispatcher.dispatch_pending()
        sizes.clear()
        sale = await approve_sale(db, clock, tenant, partner=0, amount=300_00)
        await approve_sale(db, clock, tenant, partner=1, amount=20_00)
        await reverse_sale(db, clock, tenant, sale)
        await dispatcher.dispatch_pending()
        assert sizes == [3]
        p0, p1 = (str(p.id) for p in tenant.partners)
        assert await board(services, contest) == [(p1, 1, 20_00), (p0, 2, 0)]
        assert await credit_count(db, contest) == 3  # approval, its reversal, the other sale

        await undispatch(db)
        await dispatcher.dispatch_pending()
    assert await board(services, contest) == [(p1, 1, 20_00), (p0, 2, 0)]
    assert await credit_count(db, contest) == 3


async def test_a_failure_part_way_leaves_the_batch_pending_and_a_rerun_credits_once(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    contest = await create_contest(db, clock, tenant)
    failures = ["after the leaderboards credited, before the mark"]

    async def fails_once(events: list[OutboxEvent]) -> None:
        if failures:
            raise ConnectionError(failures.pop())

    async with private_dispatcher(services, after=fails_once) as (dispatcher, _sizes):
        await dispatcher.dispatch_pending()
        for i in range(40):
            await approve_sale(db, clock, tenant, partner=i % 2, amount=100)
        with pytest.raises(ConnectionError):
            await dispatcher.dispatch_pending()
        assert await pending(db) == 40  # nothing marked: the batch runs again
        assert await credit_count(db, contest) == 40  # the leaderboards did their part
        assert await dispatcher.dispatch_pending() == 40
        assert await pending(db) == 0
    assert [score for *_, score in await board(services, contest)] == [20 * 100, 20 * 100]
    assert await credit_count(db, contest) == 40


async def test_a_per_event_handler_failing_part_way_through_a_run_holds_the_whole_run(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    contest = await create_contest(db, clock, tenant)
    seen: list[OutboxEvent] = []

    async def fails_on_the_fifth(event: OutboxEvent) -> None:
        seen.append(event)
        if len(seen) == 5:
            raise ConnectionError("went away on the fifth event")

    async with private_dispatcher(services) as (dispatcher, _sizes):
        await dispatcher.dispatch_pending()
        dispatcher.register(SCORED_EVENT_TYPES[0], fails_on_the_fifth)
        for _ in range(10):
            await approve_sale(db, clock, tenant, amount=100)
        with contextlib.suppress(ConnectionError):
            await dispatcher.dispatch_pending()
        assert await pending(db) == 10
        assert await credit_count(db, contest) == 0  # per-event handlers run first
        assert await dispatcher.dispatch_pending() == 10
    assert [score for *_, score in await board(services, contest)] == [10 * 100]
    assert await credit_count(db, contest) == 10


async def test_keys_flushed_between_batches_are_rebuilt_then_credited(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    contest = await create_contest(db, clock, tenant)
    runtime = services.leaderboards
    async with private_dispatcher(services) as (dispatcher, _sizes):
        first = [
            await approve_sale(db, clock, tenant, partner=i % 2, amount=100) for i in range(20)
        ]
        await dispatcher.dispatch_pending()
        # What FLUSHALL does to this run's data (this run's namespace only).
        async for key in services.redis.scan_iter(match=services.keys("*")):
            await services.redis.delete(key)
        assert not await runtime.boards.is_built(contest.id)
        for i in range(30):
            await approve_sale(db, clock, tenant, partner=i % 2, amount=1000)
        await reverse_sale(db, clock, tenant, first[0])  # partner 0, from the earlier batch
        await dispatcher.dispatch_pending()
    p0, p1 = (str(p.id) for p in tenant.partners)
    assert await runtime.boards.is_built(contest.id)
    assert await board(services, contest) == [
        (p1, 1, 10 * 100 + 15 * 1000),
        (p0, 2, 9 * 100 + 15 * 1000),
    ]
    assert await credit_count(db, contest) == 51
