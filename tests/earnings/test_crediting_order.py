"""A partner's sales are credited in commit order even when one of them fails and waits
for a retry: its tier depends on the volume of the sales before it, so a later sale of the
same partner (another claim, another aggregate) waits behind it.

Found by SIGKILLing an inline dispatcher (serve on SQLite) under a stream of approvals with
a tiered program: now and then a sale was credited before the partner's earlier one and
kept the lower tier (no Silver uplift) for good."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from sqlmodel import select

from deal_registration.sales.signals import SaleClaimSignals
from earnings import handlers as earnings_handlers
from earnings.models import CreditedSource, EarningEntry, EntryKind
from infra.clock import OffsetClock
from infra.db import Database
from infra.outbox import Dispatcher, OutboxEvent
from schema.context import Services
from tests.earnings import scenarios as es
from tests.factories import Tenant, approve_sale


@dataclass
class FailsOnce:
    """A handler that runs before crediting and fails on one event while ``broken``."""

    poison: OutboxEvent | None = None
    broken: bool = True
    seen: list[list[str]] = field(default_factory=list)

    async def __call__(self, events: list[OutboxEvent]) -> None:
        self.seen.append([str(e.id) for e in events])
        if self.broken and self.poison is not None and self.poison.id in {e.id for e in events}:
            raise ValueError("a handler before crediting failed on this sale")


async def _kinds(db: Database, event: OutboxEvent) -> list[EntryKind]:
    async with db.session() as session:
        rows = await session.exec(
            select(EarningEntry).where(EarningEntry.source_event_id == event.id)
        )
        return sorted(r.kind for r in rows)


async def _credited(db: Database, event: OutboxEvent) -> bool:
    async with db.session() as session:
        found = await session.exec(
            select(CreditedSource.id).where(CreditedSource.source_event_id == event.id)
        )
        return found.first() is not None


async def test_a_sale_waits_behind_the_partners_earlier_sale_that_failed(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    clock.freeze()
    await es.seed_products(db, clock, tenant)
    # Silver (+1%) from 10,000.00 over 30 days.
    await es.make_program(db, clock, tenant, es.worked_rules(clock.now() - timedelta(days=1)))
    probe = FailsOnce()
    dispatcher = Dispatcher(db, clock)  # its own, with the probe in front of crediting
    dispatcher.register_batch(["SaleApproved"], probe)
    dispatcher.register_all(earnings_handlers.handlers(db, clock, services.hub, SaleClaimSignals()))
    sold = clock.now() - timedelta(days=2)
    async with services.outbox.paused():  # only this dispatcher runs the events below
        first = await approve_sale(db, clock, tenant, amount=6_000_00, sold_at=sold)
        second = await approve_sale(
            db, clock, tenant, amount=6_000_00, sold_at=sold + timedelta(minutes=1)
        )
        other = await approve_sale(db, clock, tenant, partner=1, amount=100_00, sold_at=sold)
        probe.poison = first

        await dispatcher.dispatch_pending()
        # The first sale failed alone and waits; the partner's next sale waits behind it,
        # uncharged; another partner's sale went on.
        assert not await _credited(db, first)
        assert not await _credited(db, second)
        assert await _credited(db, other)
        async with db.session() as session:
            waiting = await session.get(OutboxEvent, second.id)
        assert waiting is not None
        assert (waiting.attempts, waiting.dispatched_at) == (0, None)

        probe.broken = False
        clock.advance(timedelta(minutes=1))  # past the first retry's backoff
        await dispatcher.dispatch_pending()

    assert await _kinds(db, first) == [EntryKind.COMMISSION]
    # 12,000.00 in the window: the second sale is credited at Silver.
    assert await _kinds(db, second) == sorted([EntryKind.COMMISSION, EntryKind.TIER_UPLIFT])
