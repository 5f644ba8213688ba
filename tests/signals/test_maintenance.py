"""Signals kept from the outbox: each value on the hand-computed scenario, idempotent
handlers, the daily snapshot, and the rebuild equal to the incremental result."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.applications import Starlette

from infra.clock import OffsetClock
from infra.db import Database, begin_write
from infra.outbox import OutboxEvent
from partners.roles import Role
from schema.context import Services
from signals import daily, facts, handlers, locks, maintenance
from signals import reps as signal_reps
from signals.events import SIGNALS_CHANGED
from signals.models import SignalFact, SignalSnapshot
from signals.snapshots import values_at
from tests.earnings.scenarios import make_program, seed_products, worked_rules
from tests.factories import Tenant, approve_sale, blocked_on_a_lock
from tests.signals.scenarios import EXPECTED_D8, run, settle
from tests.support import GQL, eventually, refused_inserts


async def stored(db: Database, tenant: Tenant) -> tuple[list[Any], list[Any]]:
    """Facts and snapshots as rows of plain values (without when they were computed)."""
    async with db.session() as session:
        facts = [
            f.model_dump()
            for f in await session.exec(
                select(SignalFact)
                .where(SignalFact.vendor_id == tenant.vendor.id)
                .order_by(col(SignalFact.partner_id), col(SignalFact.day))
            )
        ]
        snapshots = [
            (s.partner_id, s.day, s.currency, s.values)
            for s in await session.exec(
                select(SignalSnapshot)
                .where(SignalSnapshot.vendor_id == tenant.vendor.id)
                .order_by(col(SignalSnapshot.partner_id), col(SignalSnapshot.day))
            )
        ]
    return facts, snapshots


def approx(expected: dict[str, Any]) -> dict[str, Any]:
    return {k: pytest.approx(v) if isinstance(v, float) else v for k, v in expected.items()}


async def test_each_signal_on_the_scenario_and_rebuild_equals_incremental(
    app: Starlette, services: Services, db: Database, clock: OffsetClock, gql: GQL,
    tenant: Tenant,
) -> None:  # fmt: skip
    scenario = await run(app, services, db, clock, gql, tenant)
    d0, d8 = scenario.d0, clock.now().date()
    partner = tenant.partners[0].id
    async with db.session() as session:
        on_d8 = (await values_at(session, tenant.vendor.id, d8))[partner]
        on_d1 = (await values_at(session, tenant.vendor.id, d0 + timedelta(days=1)))[partner]
        on_d0 = (await values_at(session, tenant.vendor.id, d0))[partner]
    assert on_d8 == approx(EXPECTED_D8)
    # The first day: A alone; the deals submitted and not answered; the partner admin and
    # the rep active.
    assert on_d0["revenue_7d"] == 20_000
    assert on_d0["approved_claim_share"] == 0.5
    assert on_d0["open_pipeline"] == 1_500_000
    assert on_d0["registration_response_days"] is None
    assert on_d0["active_users_7d"] == 2
    assert on_d1["registration_response_days"] == 1.0
    assert on_d1["days_since_last_sale"] == 1
    # Partner 1 had nothing happen: its snapshot is the daily job's (run here; its loop
    # beside the dispatcher may have been first).
    await daily.take_all_due(db, clock)
    assert await daily.take_all_due(db, clock) == 0  # nobody is due any more
    async with db.session() as session:
        quiet = (await values_at(session, tenant.vendor.id, d8))[tenant.partners[1].id]
    assert quiet["revenue_30d"] == 0
    assert quiet["activated"] is False
    assert quiet["days_since_last_sale"] is None

    incremental = await stored(db, tenant)
    async with db.transaction() as session:
        await begin_write(session)
        count, changed = await maintenance.rebuild(session, clock, tenant.vendor.id)
    assert changed == 0  # no snapshot differs from what the handlers kept
    assert count == len(incremental[0])
    assert await stored(db, tenant) == incremental


@pytest.mark.parametrize("copy_above", [facts.COPY_ABOVE, 1])
async def test_a_rebuild_restores_lost_facts_and_snapshots(
    app: Starlette, services: Services, db: Database, clock: OffsetClock, gql: GQL,
    tenant: Tenant, copy_above: int, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """(With a threshold of 1, PostgreSQL writes the facts with COPY, as for a large vendor.)"""
    monkeypatch.setattr(facts, "COPY_ABOVE", copy_above)
    await run(app, services, db, clock, gql, tenant)
    await daily.take_all_due(db, clock)
    before = await stored(db, tenant)
    async with db.transaction() as session:
        for row in await session.exec(select(SignalFact)):
            await session.delete(row)
        snapshot = (await session.exec(select(SignalSnapshot))).first()
        assert snapshot is not None
        snapshot.values = {**snapshot.values, "revenue_7d": 1}
        session.add(snapshot)
    async with db.transaction() as session:
        await begin_write(session)
        _, changed = await maintenance.rebuild(session, clock, tenant.vendor.id)
    assert changed == 1
    assert await stored(db, tenant) == before


async def test_handling_the_same_events_twice_counts_them_once(
    app: Starlette, services: Services, db: Database, clock: OffsetClock, gql: GQL,
    tenant: Tenant,
) -> None:  # fmt: skip
    await run(app, services, db, clock, gql, tenant)
    before = await stored(db, tenant)
    async with db.session() as session:
        events = list(
            await session.exec(
                select(OutboxEvent)
                .where(col(OutboxEvent.type).in_(handlers.SIGNAL_SOURCE_TYPES))
                .order_by(col(OutboxEvent.id))
            )
        )
        announced = len(
            list(await session.exec(select(OutboxEvent).where(OutboxEvent.type == SIGNALS_CHANGED)))
        )
    assert events
    assert await handlers.apply(db, clock, events) == 0
    assert await handlers.apply(db, clock, events[-3:]) == 0
    assert await stored(db, tenant) == before
    async with db.session() as session:
        again = list(
            await session.exec(select(OutboxEvent).where(OutboxEvent.type == SIGNALS_CHANGED))
        )
    assert len(again) == announced  # nothing changed, nothing announced


async def test_a_vendor_whose_snapshots_fail_does_not_stop_the_daily_pass(
    db: Database, clock: OffsetClock, tenant: Tenant, other_tenant: Tenant,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """The pass goes vendor by vendor in id order: the first one's snapshots fail (in the
    database, every time), the second's are still taken, and the first's next pass once
    the fault is gone."""
    first, second = sorted([tenant, other_tenant], key=lambda t: t.vendor.id)
    today = clock.now().date()
    async with refused_inserts(db, "signal_snapshot", first.vendor.id):
        assert await daily.take_all_due(db, clock) == len(second.partners)
    assert str(first.vendor.id) in caplog.text  # logged with the vendor, then went on
    assert await snapshotted(db, second, today) == {p.id for p in second.partners}
    assert await snapshotted(db, first, today) == set()
    assert await daily.take_all_due(db, clock) == len(first.partners)
    assert await snapshotted(db, first, today) == {p.id for p in first.partners}


async def snapshotted(db: Database, tenant: Tenant, day: date) -> set[Any]:
    async with db.session() as session:
        rows = await session.exec(
            select(SignalSnapshot.partner_id).where(
                SignalSnapshot.vendor_id == tenant.vendor.id, SignalSnapshot.day == day
            )
        )
        return set(rows)


async def test_the_daily_snapshots_and_a_handlers_refresh_of_a_partner_do_not_deadlock(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """The daily job takes a partner's snapshot of today and then its reps'; a handler's
    refresh of the same partner at that moment must take them in the same order (it took
    the reps' first: on PostgreSQL each then waited for the other, and one was killed)."""
    await seed_products(db, clock, tenant)
    await make_program(db, clock, tenant, worked_rules(clock.now()))
    partner = tenant.partners[0].id
    await approve_sale(db, clock, tenant, amount=1_000_00, rep=tenant.user(Role.PARTNER_REP).id)
    await settle(services)  # the rep has history; nothing of tomorrow is taken yet
    clock.advance(timedelta(days=1))
    today = clock.now().date()
    async with services.outbox.paused(), db.transaction() as daily_job:
        await begin_write(daily_job)
        currency = await maintenance.signal_currency(daily_job, tenant.vendor.id)
        await maintenance.take(daily_job, clock, tenant.vendor.id, currency, [partner], [today])

        async def refresh() -> None:
            async with db.transaction() as session:
                await begin_write(session)
                await maintenance.refresh(session, clock, tenant.vendor.id, [partner], today)

        handler = asyncio.create_task(refresh())
        await blocked_on_a_lock(daily_job, handler)  # on the partner's snapshot
        # the rep's snapshot of today, and yesterday's re-taken
        assert await signal_reps.take_due(daily_job, clock, tenant.vendor.id, currency) == 2
    await handler
    assert await snapshotted(db, tenant, today) == {partner}


WRITERS: dict[str, Callable[[AsyncSession, OffsetClock, Tenant], Awaitable[object]]] = {
    "advance": lambda s, clock, t: maintenance.advance(
        s, clock, t.vendor.id, {t.partners[1].id: {facts.CREDITS}}
    ),
    "refresh": lambda s, clock, t: maintenance.refresh(
        s, clock, t.vendor.id, [t.partners[1].id], clock.now().date()
    ),
    "take_due": lambda s, clock, t: maintenance.take_due(s, clock, t.vendor.id),
    "rebuild": lambda s, clock, t: maintenance.rebuild(s, clock, t.vendor.id),
}


@pytest.mark.parametrize("writer", sorted(WRITERS))
async def test_each_signal_writer_waits_for_another_writer_of_the_vendor(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant, writer: str
) -> None:
    """Writers of one vendor's signal rows run one after the other, even on rows of other
    partners (rows not inserted yet cannot be locked in any order: two writers could each
    wait for the other). Here the first holds partner 0's snapshot of today, the second
    writes for partner 1 (or all); on PostgreSQL it waits for the first's commit."""
    if not db.url.startswith("postgresql"):
        pytest.skip("PostgreSQL runs writers at once; SQLite one at a time anyway")
    today = clock.now().date()
    async with services.outbox.paused(), db.transaction() as first:
        currency = await maintenance.signal_currency(first, tenant.vendor.id)
        await maintenance.take(
            first, clock, tenant.vendor.id, currency, [tenant.partners[0].id], [today]
        )

        backend: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def second() -> None:
            async with db.transaction() as session:
                backend.set_result(int(await session.scalar(text("SELECT pg_backend_pid()"))))
                await WRITERS[writer](session, clock, tenant)

        task = asyncio.create_task(second())
        await asyncio.wait([backend, task], return_when=asyncio.FIRST_COMPLETED)
        if not backend.done():
            await task  # (failed before asking: raises)
        pid = backend.result()

        async def waits() -> bool:
            # This test's second writer waiting for this vendor's signal lock (pg_locks is
            # the server's: another run's writers, on other databases, wait there too).
            waiting = await first.scalar(
                text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                     " AND NOT granted AND pid = :pid AND classid = :namespace"
                     " AND objid::bigint = CAST(:key AS bigint) & 4294967295"
                     " AND database = (SELECT oid FROM pg_database"
                     "                 WHERE datname = current_database())"),
                {"pid": pid, "namespace": locks.NAMESPACE, "key": locks.key(tenant.vendor.id)},
            )  # fmt: skip
            return bool(waiting) or task.done()

        await eventually(waits, within=10)
        assert not task.done()
    await task
    assert tenant.partners[0].id in await snapshotted(db, tenant, today)


async def test_holding_a_vendor_after_another_that_comes_later_is_refused(
    db: Database, tenant: Tenant, other_tenant: Tenant
) -> None:
    first, second = sorted([tenant.vendor.id, other_tenant.vendor.id], key=locks.key)
    async with db.transaction() as session:
        await locks.hold(session, [second])
        await locks.hold(session, [second])  # held: nothing asked
        with pytest.raises(locks.LockOrderError):
            await locks.hold(session, [first])
    async with db.transaction() as session:  # a new transaction holds nothing yet
        await locks.hold(session, [first])
        await locks.hold(session, [first, second])


async def test_a_lock_a_rolled_back_savepoint_released_is_taken_again(
    db: Database, tenant: Tenant
) -> None:
    async def held(session: AsyncSession) -> int:
        if not db.url.startswith("postgresql"):
            return 1  # SQLite: nothing to hold (one writer at a time)
        count = await session.scalar(
            text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                 " AND classid = :namespace AND pid = pg_backend_pid()"),
            {"namespace": locks.NAMESPACE},
        )  # fmt: skip
        return int(count or 0)

    async with db.transaction() as session:
        savepoint = await session.begin_nested()
        await locks.hold(session, [tenant.vendor.id])
        assert await held(session) == 1
        await savepoint.rollback()  # releases what was taken in it
        await locks.hold(session, [tenant.vendor.id])
        assert await held(session) == 1
