"""The dispatcher's live lane: while a pass runs its slow handlers, what commits meanwhile
gets its live handlers (a leaderboard's scoring) at once, in commit order and once, and a
failure there is left to the pass, which charges it as usual."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import col, select

from infra import outbox
from infra.clock import OffsetClock
from infra.outbox import (
    LIVE_PAGE,
    Dispatcher,
    OutboxEvent,
    OutboxLease,
    record_event,
    record_events,
)
from schema.context import Services
from tests.factories import Tenant
from tests.support import eventually

LIVE_TYPE = "ProbeLiveLane"


@dataclass
class Live:
    """The live handler: records each run's events; fails on a poison one while broken."""

    broken: bool = True
    runs: list[list[str]] = field(default_factory=list)
    failures: int = 0

    async def __call__(self, events: list[OutboxEvent]) -> None:
        names = [e.payload["name"] for e in events]
        if self.broken and any(e.payload.get("poison") for e in events):
            self.failures += 1
            raise ValueError("poison")
        self.runs.append(names)


@dataclass
class Slow:
    """A slow handler nothing live waits for (earnings crediting, say): it holds its run
    until the test lets it go."""

    release: asyncio.Event = field(default_factory=asyncio.Event)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    runs: list[list[str]] = field(default_factory=list)
    delay: float = 0.0  # each run's time once released

    async def __call__(self, events: list[OutboxEvent]) -> None:
        self.started.set()
        await self.release.wait()
        await asyncio.sleep(self.delay)
        self.runs.append([e.payload["name"] for e in events])


@asynccontextmanager
async def running(
    services: Services, clock: OffsetClock
) -> AsyncIterator[tuple[Dispatcher, Live, Slow]]:
    """A dispatcher of the test's own, running as ``channelboard dispatch`` does, while the
    app's own is paused (its poll would dispatch the probe events too)."""
    live, slow = Live(), Slow()
    dispatcher = Dispatcher(services.db, clock)
    dispatcher.register_batch([LIVE_TYPE], live, live=True)
    dispatcher.register_batch([LIVE_TYPE], slow)
    async with services.outbox.paused():
        task = asyncio.create_task(dispatcher.run(poll_interval=0.05))
        try:
            yield dispatcher, live, slow
        finally:
            slow.release.set()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def commit(
    services: Services,
    clock: OffsetClock,
    tenant: Tenant,
    dispatcher: Dispatcher,
    name: str,
    aggregate: uuid.UUID | None = None,
    **payload: object,
) -> OutboxEvent:
    async with services.db.transaction() as session:
        event = await record_event(
            session, clock, vendor_id=tenant.vendor.id, type=LIVE_TYPE,
            aggregate_id=aggregate or uuid.uuid4(), payload={"name": name, **payload},
        )  # fmt: skip
    dispatcher.notify()
    return event


async def rows(services: Services, events: list[OutboxEvent]) -> list[OutboxEvent]:
    async with services.db.session() as session:
        found = await session.exec(
            select(OutboxEvent).where(col(OutboxEvent.id).in_([e.id for e in events]))
        )
        by_id = {e.id: e for e in found}
    return [by_id[e.id] for e in events]


def names(runs: list[list[str]]) -> list[str]:
    return [name for run in runs for name in run]


async def test_what_commits_during_a_pass_gets_its_live_handlers_at_once_and_once(
    services: Services, clock: OffsetClock, tenant: Tenant
) -> None:
    async with running(services, clock) as (dispatcher, live, slow):
        a = await commit(services, clock, tenant, dispatcher, "a")
        await asyncio.wait_for(slow.started.wait(), 10)  # the pass is in a's slow handler
        assert live.runs == [["a"]]
        b = await commit(services, clock, tenant, dispatcher, "b")
        c = await commit(services, clock, tenant, dispatcher, "c")

        async def lane_ran() -> bool:
            return names(live.runs) == ["a", "b", "c"]

        # b and c are live while the pass is still held in a's slow handler.
        await eventually(lane_ran)
        assert slow.runs == []
        slow.release.set()

        async def dispatched() -> bool:
            return all(r.dispatched_at is not None for r in await rows(services, [a, b, c]))

        await eventually(dispatched)
        assert names(slow.runs) == ["a", "b", "c"]
        # The pass did not run the live handler again for what the lane had handled.
        assert names(live.runs) == ["a", "b", "c"]


async def test_a_live_failure_is_left_to_the_pass_which_charges_it_and_holds_its_aggregate(
    services: Services, clock: OffsetClock, tenant: Tenant
) -> None:
    async with running(services, clock) as (dispatcher, live, slow):
        await commit(services, clock, tenant, dispatcher, "first")
        await asyncio.wait_for(slow.started.wait(), 10)
        aggregate = uuid.uuid4()
        poison = await commit(services, clock, tenant, dispatcher, "poison", aggregate, poison=True)

        async def lane_failed() -> bool:
            return live.failures == 1

        await eventually(lane_failed)
        after = await commit(services, clock, tenant, dispatcher, "after", aggregate)
        other = await commit(services, clock, tenant, dispatcher, "other")

        async def lane_ran() -> bool:
            return "other" in names(live.runs)

        # The lane failed on poison and left its aggregate to the pass: the later event of
        # that aggregate waits, another aggregate's does not.
        await eventually(lane_ran)
        assert names(live.runs) == ["first", "other"]
        slow.release.set()

        async def charged() -> bool:
            p, _, o = await rows(services, [poison, after, other])
            return p.attempts == 1 and o.dispatched_at is not None

        await eventually(charged)
        # The pass charged the poison event, held the later event of its aggregate, and
        # dispatched the other one.
        p, a = await rows(services, [poison, after])
        assert (p.dispatched_at, a.dispatched_at, a.attempts) == (None, None, 0)
        assert "after" not in names(live.runs)
        # Mended, the retry runs the poison event, then the one behind it, in order.
        live.broken = False
        clock.advance(timedelta(minutes=1))
        dispatcher.notify()

        async def through() -> bool:
            return all(r.dispatched_at is not None for r in await rows(services, [poison, after]))

        await eventually(through)
        assert names(live.runs).index("poison") < names(live.runs).index("after")


async def test_a_dispatcher_behind_leaves_the_backlog_to_the_pass(
    services: Services, clock: OffsetClock, tenant: Tenant
) -> None:
    """With ``LIVE_PAGE`` events or more waiting, the lane stands aside: reading the backlog
    at every commit would slow the pass that has to clear it."""
    async with running(services, clock) as (dispatcher, live, slow):
        await commit(services, clock, tenant, dispatcher, "first")
        await asyncio.wait_for(slow.started.wait(), 10)
        backlog = [
            (tenant.vendor.id, LIVE_TYPE, uuid.uuid4(), {"name": f"b{i}"}) for i in range(LIVE_PAGE)
        ]
        async with services.db.transaction() as session:
            await record_events(session, clock, backlog)
        dispatcher.notify()
        await asyncio.sleep(0.3)
        assert names(live.runs) == ["first"]
        slow.release.set()

        async def drained() -> bool:
            return len(names(slow.runs)) == LIVE_PAGE + 1

        # A pass over 501 events (each with its live handlers and marks): a bound on a
        # hang, not eventually's default 3 s, which a loaded machine could take for it.
        await eventually(drained, within=60)
        # The pass gave each its live handlers, once, in commit order.
        assert names(live.runs) == ["first", *(f"b{i}" for i in range(LIVE_PAGE))]


async def test_the_lane_leaves_an_aggregate_with_an_event_waiting_for_a_retry_to_the_pass(
    services: Services, clock: OffsetClock, tenant: Tenant
) -> None:
    async with running(services, clock) as (dispatcher, live, slow):
        aggregate = uuid.uuid4()
        first = await commit(services, clock, tenant, dispatcher, "x", aggregate, poison=True)

        async def charged() -> bool:
            return (await rows(services, [first]))[0].attempts == 1

        await eventually(charged)  # x waits for its retry (its live handler failed)
        await commit(services, clock, tenant, dispatcher, "block")
        await asyncio.wait_for(slow.started.wait(), 10)
        later = await commit(services, clock, tenant, dispatcher, "y", aggregate)
        await commit(services, clock, tenant, dispatcher, "z")

        async def lane_ran() -> bool:
            return "z" in names(live.runs)

        await eventually(lane_ran)  # the lane ran for z, and left y behind x
        assert "y" not in names(live.runs)
        live.broken = False
        slow.release.set()

        async def through() -> bool:
            return all(r.dispatched_at is not None for r in await rows(services, [first, later]))

        await eventually(through, within=10)
        assert names(live.runs).index("x") < names(live.runs).index("y")


async def test_the_lane_leaves_an_aggregate_the_pass_is_handling_to_the_pass(
    services: Services, clock: OffsetClock, tenant: Tenant
) -> None:
    """The pass is in the slow handlers of an aggregate's event (its live step done): a later
    event of that aggregate waits for it, since that event may yet fail and hold the rest."""
    async with running(services, clock) as (dispatcher, live, slow):
        aggregate = uuid.uuid4()
        await commit(services, clock, tenant, dispatcher, "approved", aggregate)
        await asyncio.wait_for(slow.started.wait(), 10)
        await commit(services, clock, tenant, dispatcher, "reversed", aggregate)
        await commit(services, clock, tenant, dispatcher, "another")

        async def lane_ran() -> bool:
            return "another" in names(live.runs)

        await eventually(lane_ran)
        assert "reversed" not in names(live.runs)
        slow.release.set()

        async def reversed_live() -> bool:
            return "reversed" in names(live.runs)

        await eventually(reversed_live)
        assert names(live.runs).count("reversed") == 1


@pytest.mark.slow
async def test_a_pass_under_a_steady_stream_keeps_renewing_its_lease(
    services: Services, clock: OffsetClock, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pass reads small pages for as long as commits keep coming; it used to renew the
    single lease only after a full page, so a long stream outlived the lease, and another
    dispatcher could take it mid-pass (the lane, which runs only while the lease is held,
    would stop too). Here LEASE is 6 s and one pass lasts through a 5 s stream."""
    monkeypatch.setattr(outbox, "LEASE", timedelta(seconds=6))
    lease = OutboxLease.__table__  # type: ignore[attr-defined]

    async def lease_row() -> tuple[str | None, datetime, int]:
        async with services.db.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(lease.c.holder, lease.c.expires_at, lease.c.passes).where(
                        lease.c.name == outbox.LEASE_NAME
                    )
                )
            ).one()
        return row.holder, row.expires_at, row.passes

    async with running(services, clock) as (dispatcher, live, slow):
        slow.delay = 0.1  # slower than the stream: the pass never finds an empty page
        await commit(services, clock, tenant, dispatcher, "tick")
        await asyncio.wait_for(slow.started.wait(), 10)
        holder, _, passes = await lease_row()
        assert holder is not None
        slow.release.set()
        started = time.monotonic()
        while time.monotonic() - started < 5:
            await commit(services, clock, tenant, dispatcher, "tick")
            await asyncio.sleep(0.03)
        now_holder, expires_at, now_passes = await lease_row()
        # The same pass, still running: no pass ended meanwhile (``passes``).
        assert (now_holder, now_passes) == (holder, passes)
        # Renewed during the stream: without renewals about 1 s of the lease would be left.
        assert expires_at - datetime.now(UTC) > timedelta(seconds=2.5)
