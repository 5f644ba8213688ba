"""`channelboard signals rebuild` (every vendor, one transaction each) SIGKILLed just after
the first vendor's commit, then run again: the facts and snapshots are those of an
uninterrupted rebuild, and each changed snapshot's SignalsChanged event is recorded once
(the rerun finds the first vendor's unchanged and records none for it)."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from sqlmodel import col, delete, func, select

from api.settings import Settings
from infra.clock import OffsetClock
from infra.db import Database
from infra.outbox import OutboxEvent
from schema.context import Services
from signals.events import SIGNALS_CHANGED
from signals.models import SignalFact, SignalSnapshot
from tests.factories import Tenant, approve_sale
from tests.processes import KILLED, cli_killed_at, process_env, run_to_end
from tests.signals.scenarios import settle

pytestmark = pytest.mark.slow


async def _books(db: Database) -> tuple[list[Any], dict[Any, Any], int]:
    async with db.session() as session:
        facts = [
            f.model_dump(exclude={"id"})
            for f in await session.exec(
                select(SignalFact).order_by(
                    col(SignalFact.vendor_id), col(SignalFact.partner_id), col(SignalFact.day)
                )
            )
        ]
        snapshots = {
            (s.vendor_id, s.partner_id, s.day): s.values
            for s in await session.exec(select(SignalSnapshot))
        }
        events = (
            await session.exec(select(func.count()).where(OutboxEvent.type == SIGNALS_CHANGED))
        ).one()
    return facts, snapshots, int(events)


async def _forget(db: Database) -> None:
    """As after a restore that lost them: no facts, no snapshots."""
    async with db.transaction() as session:
        await session.exec(delete(SignalFact))
        await session.exec(delete(SignalSnapshot))


async def test_a_signals_rebuild_killed_between_vendors_is_finished_by_a_rerun(
    settings: Settings, db: Database, clock: OffsetClock, services: Services,
    tenant: Tenant, other_tenant: Tenant,
) -> None:  # fmt: skip
    clock.reset()  # the command runs on the real clock
    for t in (tenant, other_tenant):
        await approve_sale(db, clock, t, amount=1_000_00)
    await settle(services)
    env = process_env(settings)

    async def rebuild() -> None:
        code, output = await run_to_end(
            sys.executable, "-m", "api", "signals", "rebuild", env=env, cwd=".", within=120
        )
        assert code == 0, output

    async with services.outbox.paused():  # the events stay countable
        await _forget(db)
        _, _, before = await _books(db)
        await rebuild()
        facts, snapshots, after = await _books(db)
        made = after - before
        assert {v for v, _, _ in snapshots} == {tenant.vendor.id, other_tenant.vendor.id}
        assert made > 0

        await _forget(db)
        code, output = await cli_killed_at(settings, "commit", 1, "signals", "rebuild")
        assert code == KILLED, output
        _, half, _ = await _books(db)
        assert len({v for v, _, _ in half}) == 1  # one vendor rebuilt, the other not yet
        await rebuild()
        assert await _books(db) == (facts, snapshots, after + made)
