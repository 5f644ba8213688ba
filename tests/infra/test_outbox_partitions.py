"""Dispatchers that share the outbox (CHANNELBOARD_OUTBOX_PARTITIONS above 1, PostgreSQL):
each event's slot follows its ordering key, dispatchers split the partitions between them,
and real `channelboard dispatch` processes handle every event once, each partner's in
commit order, even when one of them is killed mid-run."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlmodel import col

from api.settings import Settings, SettingsError
from deal_registration.events import DealStatusChanged
from deal_registration.registrations.notices import vendor_channel
from infra.clock import OffsetClock
from infra.db import Database
from infra.outbox import OutboxEvent, _Lease, record_event
from infra.outbox_partitions import (
    OutboxPartition,
    PartitionLeases,
    slot_of,
)
from leaderboards.events import ContestChanged
from schema.context import Services
from tests.factories import Tenant
from tests.processes import cli_process
from tests.support import eventually

PARTITIONS = 8
log = logging.getLogger(__name__)


def _postgres_only(settings: Settings) -> None:
    if settings.database_url.startswith("sqlite"):
        pytest.skip("partition leases need PostgreSQL (SQLite runs one dispatcher at a time)")


def test_partitions_above_one_need_postgresql() -> None:
    assert Settings.from_env({}).outbox_partitions == 1
    with pytest.raises(SettingsError, match="needs PostgreSQL"):
        Settings.from_env({"CHANNELBOARD_OUTBOX_PARTITIONS": "8"})
    postgres = "postgresql+asyncpg://u@h/db"
    assert (
        Settings.from_env(
            {"CHANNELBOARD_OUTBOX_PARTITIONS": "8", "CHANNELBOARD_DATABASE_URL": postgres}
        ).outbox_partitions
        == 8
    )


async def test_an_events_slot_follows_its_partner_else_its_aggregate(
    db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    partner_id, registration_id, contest_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    status = DealStatusChanged(
        registration_id=registration_id, partner_id=partner_id, from_status=None,
        to_status="SUBMITTED", at=clock.now(),
    )  # fmt: skip
    changed = ContestChanged(contest_id=contest_id, version=1)
    async with db.transaction() as session:
        deal = await record_event(
            session, clock, vendor_id=tenant.vendor.id, type=status.type,
            aggregate_id=registration_id, payload=status.to_payload(),
        )  # fmt: skip
        contest = await record_event(
            session, clock, vendor_id=tenant.vendor.id, type=changed.type,
            aggregate_id=contest_id, payload=changed.to_payload(),
        )  # fmt: skip
    async with db.session() as session:
        slots = dict(
            (await session.execute(select(OutboxEvent.id, OutboxEvent.partition_slot))).all()  # type: ignore[call-overload]
        )
    assert slots[deal.id] == slot_of(partner_id)
    assert slots[contest.id] == slot_of(contest_id)


async def _holders(db: Database) -> dict[int, str | None]:
    async with db.session() as session:
        rows = await session.execute(select(OutboxPartition.partition, OutboxPartition.holder))  # type: ignore[call-overload]
        return dict(rows.all())


async def test_leases_split_the_partitions_fairly(settings: Settings, db: Database) -> None:
    _postgres_only(settings)
    first, second, third = (PartitionLeases(db, PARTITIONS) for _ in range(3))
    assert await first.claim() == tuple(range(PARTITIONS))
    assert await second.claim() == ()  # all held: the first gives up half at its next pass
    assert len(await first.claim()) == PARTITIONS // 2
    assert len(await second.claim()) == PARTITIONS // 2
    assert set(first.held).isdisjoint(second.held)

    await third.claim()  # ceil(8 / 3) = 3 each at most
    for leases in (first, second, third):
        await leases.claim()
    assert sorted(len(x.held) for x in (first, second, third)) == [2, 3, 3]
    held = [p for x in (first, second, third) for p in x.held]
    assert sorted(held) == list(range(PARTITIONS))  # each partition has one holder

    await first.release()  # leaving hands its partitions over at once
    for leases in (second, third):
        await leases.claim()
    assert sorted(second.held + third.held) == list(range(PARTITIONS))

    # A dispatcher configured with another partition count takes nothing.
    assert await PartitionLeases(db, 4).claim() == ()
    assert set((await _holders(db)).values()) == {second.holder, third.holder}


async def test_partitioned_dispatchers_stand_aside_during_a_single_lease_pass(
    settings: Settings, db: Database
) -> None:
    _postgres_only(settings)
    single = _Lease(db)
    async with db.session() as session:
        assert await single.take(await single.passes(session))
    leases = PartitionLeases(db, PARTITIONS)
    assert await leases.claim() == ()  # one writer at a time: never both modes at once
    await single.release()
    assert await leases.claim() == tuple(range(PARTITIONS))


# ------------------------------------------------------------------ real dispatchers


async def _record(
    db: Database, clock: OffsetClock, tenant: Tenant, partners: list[uuid.UUID], rounds: int
) -> dict[uuid.UUID, list[str]]:
    """``rounds`` status notices per partner, interleaved, in transactions of 200; returns
    each partner's event ids in commit order."""
    order: dict[uuid.UUID, list[str]] = defaultdict(list)
    pending = [(partner, n) for n in range(rounds) for partner in partners]
    for start in range(0, len(pending), 200):
        async with db.transaction() as session:
            for partner, n in pending[start : start + 200]:
                notice = DealStatusChanged(
                    registration_id=uuid.uuid4(), partner_id=partner, from_status=str(n),
                    to_status=str(n + 1), at=datetime.now(UTC),
                )  # fmt: skip
                event = await record_event(
                    session, clock, vendor_id=tenant.vendor.id, type=notice.type,
                    aggregate_id=notice.registration_id, payload=notice.to_payload(),
                )  # fmt: skip
                order[partner].append(str(event.id))
    return order


@asynccontextmanager
async def _notices(services: Services, tenant: Tenant) -> AsyncIterator[list[dict[str, str]]]:
    """Every notice the dispatchers publish on the vendor's channel, as received."""
    received: list[dict[str, str]] = []
    pubsub = services.redis.pubsub()
    await pubsub.subscribe(vendor_channel(services.hub, tenant.vendor.id))

    async def read() -> None:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is not None:
                received.append(json.loads(message["data"]))

    reader = asyncio.create_task(read())
    try:
        yield received
    finally:
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
        await pubsub.aclose()


async def _undispatched(db: Database) -> int:
    async with db.session() as session:
        found = await session.execute(
            select(func.count()).where(col(OutboxEvent.dispatched_at).is_(None))
        )
        return int(found.scalar_one())


def _in_order_once(received: list[dict[str, str]], order: dict[uuid.UUID, list[str]]) -> None:
    """Every event's notice arrived, and each partner's, first arrivals kept, in commit
    order (a re-run after a crash repeats notices: subscribers tell them by event id)."""
    seen: dict[str, list[str]] = defaultdict(list)
    for notice in received:
        ids = seen[notice["partner_id"]]
        if notice["event_id"] not in ids:
            ids.append(notice["event_id"])
    assert {uuid.UUID(p): ids for p, ids in seen.items()} == order


async def _split(db: Database, count: int) -> None:
    async def settled() -> bool:
        holders = Counter((await _holders(db)).values())
        return (
            len(holders) == count
            and None not in holders
            and max(holders.values()) <= (-(-PARTITIONS // count))
        )

    await eventually(settled, within=30)


DISPATCH = ("dispatch", "--poll-interval", "0.2")


@pytest.mark.slow
async def test_two_dispatcher_processes_share_the_events_and_handle_each_once(
    settings: Settings, services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    _postgres_only(settings)
    partners = [uuid.uuid4() for _ in range(12)]
    extra = {"OUTBOX_PARTITIONS": str(PARTITIONS)}
    # This test process's own dispatcher (inline, single lease) is held throughout.
    async with (
        services.outbox.paused(),
        _notices(services, tenant) as received,
        cli_process(settings, *DISPATCH, **extra) as one,
        cli_process(settings, *DISPATCH, **extra) as two,
    ):
        await _split(db, 2)
        order = await _record(db, clock, tenant, partners, rounds=50)

        async def drained() -> bool:
            return await _undispatched(db) == 0 and len(received) >= 600

        await eventually(drained, within=60)
        await asyncio.sleep(0.5)  # a notice published twice would arrive by now
        counts = Counter(n["event_id"] for n in received)
        assert len(counts) == 600
        assert set(counts.values()) == {1}  # none handled twice
        _in_order_once(received, order)
        assert len(set((await _holders(db)).values())) == 2  # both dispatched their share
        for worker in (one, two):
            worker.send_signal(signal.SIGTERM)
            output, _ = await asyncio.wait_for(worker.communicate(), 30)
            assert worker.returncode == 0, output.decode()
    assert set((await _holders(db)).values()) == {None}  # stopping hands them back


@pytest.mark.slow
async def test_a_killed_dispatchers_partitions_move_and_nothing_is_lost(
    settings: Settings, services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    _postgres_only(settings)
    partners = [uuid.uuid4() for _ in range(16)]
    extra = {"OUTBOX_PARTITIONS": str(PARTITIONS)}
    async with (
        services.outbox.paused(),
        _notices(services, tenant) as received,
        cli_process(settings, *DISPATCH, **extra) as victim,
        cli_process(settings, *DISPATCH, **extra) as survivor,
    ):
        await _split(db, 2)
        before = await _holders(db)
        order = await _record(db, clock, tenant, partners, rounds=400)
        total = sum(len(ids) for ids in order.values())

        async def started() -> bool:
            return await _undispatched(db) < total

        await eventually(started, within=60)
        victim.send_signal(signal.SIGKILL)  # mid-run: no release, no last mark
        await victim.wait()
        killed_at = asyncio.get_running_loop().time()
        left = await _undispatched(db)
        assert left > 0, "both finished before the kill: raise rounds"

        async def moved() -> bool:
            return len(set((await _holders(db)).values())) == 1 and not await _undispatched(db)

        await eventually(moved, within=30)
        moved_after = asyncio.get_running_loop().time() - killed_at
        await asyncio.sleep(0.5)
        # Exactly once in effect: every event dispatched, every notice arrived, each
        # partner's in commit order; repeats only of what the victim had in flight.
        _in_order_once(received, order)
        counts = Counter(n["event_id"] for n in received)
        assert len(counts) == total
        after = await _holders(db)
        victims = {p for p, holder in before.items() if holder != after[p]}
        assert victims  # the victim held some partitions, now the survivor's
        repeated = [e for e, n in counts.items() if n > 1]
        slots = {str(e): s for e, s in await _slots(db)}
        assert all(slots[e] % PARTITIONS in victims for e in repeated)
        log.info(f"partitions moved {moved_after:.1f} s after kill -9; {len(repeated)} repeats")
        survivor.send_signal(signal.SIGTERM)
        await asyncio.wait_for(survivor.communicate(), 30)


async def _slots(db: Database) -> list[tuple[uuid.UUID, int]]:
    async with db.session() as session:
        rows = await session.execute(select(OutboxEvent.id, OutboxEvent.partition_slot))  # type: ignore[call-overload]
        return [(r[0], r[1]) for r in rows.all()]
