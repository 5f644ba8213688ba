"""Crediting rules through the services: one worked example per program feature, amounts
computed by hand in the comments."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import col, select

from deal_registration.events import Line
from earnings import ledger
from earnings.models import EarningEntry, EntryKind
from infra.append_only import AppendOnlyError
from infra.clock import OffsetClock
from infra.db import Database
from partners.roles import Role
from schema.context import Services
from tests.earnings import scenarios as es
from tests.factories import Tenant, dispatch, reverse_sale, win_deal

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
async def program(db: Database, clock: OffsetClock, tenant: Tenant) -> None:
    clock.freeze(T0)
    await es.seed_products(db, clock, tenant)
    await es.make_program(db, clock, tenant, es.worked_rules(T0 - timedelta(days=1)))


async def entries_of(db: Database, event_id: object) -> dict[tuple[EntryKind, str], int]:
    async with db.session() as session:
        rows = await session.exec(
            select(EarningEntry)
            .where(EarningEntry.source_event_id == event_id)
            .order_by(col(EarningEntry.id))
        )
        return {(e.kind, e.line_key): e.amount_minor for e in rows}


@pytest.mark.usefixtures("program")
async def test_lines_use_sku_category_and_default_rates_plus_spiff(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    event = await es.sale(
        db, clock, tenant, 671_400,
        lines=[
            Line("NW-AP-6E", 2, 91_800),  # wireless: default 8% of 918.00 = 73.44
            Line("NW-FW-500", 1, 459_900),  # security: 10% of 4,599.00 = 459.90
            Line("NW-CARE-3Y", 3, 119_700),  # 50.00 per unit x 3 = 150.00
        ],
    )  # fmt: skip
    await dispatch(services)
    assert await entries_of(db, event.id) == {
        (EntryKind.COMMISSION, "0:NW-AP-6E"): 7_344,
        (EntryKind.COMMISSION, "1:NW-FW-500"): 45_990,
        (EntryKind.COMMISSION, "2:NW-CARE-3Y"): 15_000,
        (EntryKind.SPIFF, "0:NW-AP-6E:0"): 5_000,  # 25.00 x 2 units in EMEA
    }  # 6,714.00 is below Silver's 10,000.00: no uplift. Total 733.34.


@pytest.mark.usefixtures("program")
async def test_tiers_apply_from_the_sale_that_reaches_them(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    first = await es.sale(db, clock, tenant, 600_000)  # 6,000.00: base 8% = 480.00
    clock.advance(timedelta(days=1))
    second = await es.sale(db, clock, tenant, 400_000)  # 10,000.00 reached: Silver +1%
    clock.advance(timedelta(days=1))
    third = await es.sale(db, clock, tenant, 1_540_000)  # 25,400.00: Gold +2%
    await dispatch(services)
    assert await entries_of(db, first.id) == {(EntryKind.COMMISSION, "0:"): 48_000}
    assert await entries_of(db, second.id) == {
        (EntryKind.COMMISSION, "0:"): 32_000,  # 8% of 4,000.00
        (EntryKind.TIER_UPLIFT, ""): 4_000,  # 1% of 4,000.00
    }
    assert await entries_of(db, third.id) == {
        (EntryKind.COMMISSION, "0:"): 123_200,  # 8% of 15,400.00
        (EntryKind.TIER_UPLIFT, ""): 30_800,  # 2% of 15,400.00
    }


@pytest.mark.usefixtures("program")
async def test_revenue_leaves_the_window_after_thirty_days(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    await es.sale(db, clock, tenant, 1_200_000)  # Silver from 12,000.00
    clock.advance(timedelta(days=30))  # the first sale is exactly 30 days old: out
    later = await es.sale(db, clock, tenant, 100_000)
    await dispatch(services)
    assert await entries_of(db, later.id) == {(EntryKind.COMMISSION, "0:"): 8_000}


@pytest.mark.usefixtures("program")
async def test_refund_gate_keeps_gold_away_and_clawback_negates_exactly(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    a = await es.sale(db, clock, tenant, 500_000)  # 5,000.00 at base: 400.00
    b = await es.sale(db, clock, tenant, 2_500_000)  # 30,000.00 reached: Gold
    await dispatch(services)
    assert await entries_of(db, b.id) == {
        (EntryKind.COMMISSION, "0:"): 200_000,
        (EntryKind.TIER_UPLIFT, ""): 50_000,  # 2% of 25,000.00
    }
    clock.advance(timedelta(hours=1))
    back = await reverse_sale(db, clock, tenant, a, reason="customer refund")
    clock.advance(timedelta(hours=1))
    c = await es.sale(db, clock, tenant, 100_000)
    await dispatch(services)
    assert await entries_of(db, back.id) == {(EntryKind.CLAWBACK, "COMMISSION:0:"): -40_000}
    # Qualified revenue 26,000.00 reaches Gold, but 5,000.00 of 31,000.00 was refunded
    # (16.12%, above Gold's 10%): Silver's +1% applies. 8% + 1% of 1,000.00 = 80.00 + 10.00.
    assert await entries_of(db, c.id) == {
        (EntryKind.COMMISSION, "0:"): 8_000,
        (EntryKind.TIER_UPLIFT, ""): 1_000,
    }
    async with db.session() as session:
        entry = (
            await session.exec(
                select(EarningEntry).where(
                    EarningEntry.source_event_id == c.id,
                    EarningEntry.kind == EntryKind.TIER_UPLIFT,
                )
            )
        ).one()
    assert entry.inputs["tier"] == "Silver"
    assert entry.inputs["reached_tier"] == "Gold"
    assert entry.inputs["refund_rate_bp"] == 1612
    assert entry.inputs["gate_failures"] == [
        "your refund rate of 16.12% is above the 10% Gold allows"
    ]


@pytest.mark.usefixtures("program")
async def test_partial_reversal_claws_back_proportionally(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    sold = await es.sale(
        db, clock, tenant, 91_800, lines=[Line("NW-AP-6E", 2, 91_800)]
    )  # 73.44 commission + 50.00 spiff
    back = await reverse_sale(db, clock, tenant, sold, amount=45_900)
    await dispatch(services)
    # Half of the sale: -36.72 and -25.00.
    assert await entries_of(db, back.id) == {
        (EntryKind.CLAWBACK, "COMMISSION:0:NW-AP-6E"): -3_672,
        (EntryKind.CLAWBACK, "SPIFF:0:NW-AP-6E:0"): -2_500,
    }


@pytest.mark.usefixtures("program")
async def test_spiff_only_inside_its_window_and_region(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    line = [Line("NW-AP-6E", 1, 45_900)]
    elsewhere = await es.sale(db, clock, tenant, 45_900, lines=line, region="NA")
    clock.advance(timedelta(days=13))  # window: T0 - 1 day .. T0 + 13 days (exclusive)
    after = await es.sale(db, clock, tenant, 45_900, lines=line)
    await dispatch(services)
    assert await entries_of(db, elsewhere.id) == {(EntryKind.COMMISSION, "0:NW-AP-6E"): 3_672}
    assert await entries_of(db, after.id) == {(EntryKind.COMMISSION, "0:NW-AP-6E"): 3_672}


@pytest.mark.usefixtures("program")
async def test_won_registered_deal_pays_its_bonus(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    rep = tenant.user(Role.PARTNER_REP).id
    won = await win_deal(db, clock, tenant, amount=2_000_000, rep=rep)
    await dispatch(services)
    # 250.00 + 1% of 20,000.00 = 450.00; a won deal adds no qualified revenue.
    assert await entries_of(db, won.id) == {(EntryKind.DEAL_BONUS, ""): 45_000}


async def test_version_change_mid_period_keeps_what_was_computed(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    clock.freeze(T0)
    v1 = await es.make_program(db, clock, tenant, es.Rules(base_rates=(es.BaseRate(800),)))
    early = await es.sale(db, clock, tenant, 100_000)
    await dispatch(services)
    clock.advance(timedelta(days=10))
    async with db.transaction() as session:
        v2 = await es.programs.create_version(
            session, tenant.principal(Role.VENDOR_ADMIN), clock, program_id=v1.program_id,
            rules=es.Rules(base_rates=(es.BaseRate(900),)),
        )  # fmt: skip
    # Sold before the change but approved after it: the sale's instant picks version 1.
    late_claim = await es.sale(db, clock, tenant, 100_000, sold_at=T0 + timedelta(days=5))
    clock.advance(timedelta(days=1))
    after = await es.sale(db, clock, tenant, 100_000)
    await dispatch(services)
    assert await entries_of(db, early.id) == {(EntryKind.COMMISSION, "0:"): 8_000}
    assert await entries_of(db, late_claim.id) == {(EntryKind.COMMISSION, "0:"): 8_000}
    assert await entries_of(db, after.id) == {(EntryKind.COMMISSION, "0:"): 9_000}
    async with db.session() as session:
        versions = {
            e.source_event_id: e.program_version_id
            for e in await session.exec(select(EarningEntry))
        }
    assert versions == {early.id: v1.id, late_claim.id: v1.id, after.id: v2.id}


@pytest.mark.usefixtures("program")
async def test_crediting_twice_writes_nothing_the_second_time(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    event = await es.sale(db, clock, tenant, 100_000)
    await dispatch(services)
    assert await ledger.credit(db, clock, event, signals=services.claim_signals) == []
    assert len(await entries_of(db, event.id)) == 1


@pytest.mark.usefixtures("program")
async def test_a_run_with_an_event_credited_before_credits_the_others_once(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    """The dispatcher credits runs of events in one transaction; one of them credited
    already (a re-run after a crash, another process) must not stop or double the rest."""
    signals = services.claim_signals
    async with services.outbox.paused():  # the app's own dispatcher would credit them too
        first, done, last = [await es.sale(db, clock, tenant, 100_000) for _ in range(3)]
        assert len(await ledger.credit(db, clock, done, signals=signals)) == 1
        assert await ledger.credit_many(db, clock, [first, done, last], signals=signals) == 2
    for event in (first, done, last):
        assert await entries_of(db, event.id) == {(EntryKind.COMMISSION, "0:"): 8_000}
    assert await ledger.credit_many(db, clock, [first, done, last], signals=signals) == 0


@pytest.mark.usefixtures("program")
async def test_concurrent_crediting_of_one_event_credits_it_once(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    """Several processes (here: connections) credit the same event at the same moment."""
    async with services.outbox.paused():  # the app's own dispatcher would be a fifth
        event = await es.sale(db, clock, tenant, 1_234_567)
        results = await asyncio.gather(
            *(ledger.credit(db, clock, event, signals=services.claim_signals) for _ in range(4))
        )
    assert sorted(len(r) for r in results) == [0, 0, 0, 2]
    # 8% of 12,345.67 = 987.6536 -> 987.65; Silver 1% = 123.4567 -> 123.46
    assert await entries_of(db, event.id) == {
        (EntryKind.COMMISSION, "0:"): 98_765,
        (EntryKind.TIER_UPLIFT, ""): 12_346,
    }
    await dispatch(services)  # the outbox handler, a fifth time: nothing
    assert len(await entries_of(db, event.id)) == 2


@pytest.mark.usefixtures("program")
async def test_entries_are_append_only(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    await es.sale(db, clock, tenant, 100_000)
    await dispatch(services)
    async with db.session() as session:
        entry = (await session.exec(select(EarningEntry))).one()
        entry.amount_minor = 1
        session.add(entry)
        with pytest.raises(AppendOnlyError):
            await session.flush()
        await session.rollback()
        entry = (await session.exec(select(EarningEntry))).one()
        await session.delete(entry)
        with pytest.raises(AppendOnlyError):
            await session.flush()


@pytest.mark.usefixtures("program")
async def test_concurrent_credits_of_one_partner_see_each_others_revenue(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    """Two 6,000.00 sales credited at the same moment (two processes): together they reach
    Silver's 10,000.00, so whichever is credited second gets the uplift — exactly one."""
    signals = services.claim_signals
    async with services.outbox.paused():  # the app's own dispatcher would be a third
        first = await es.sale(db, clock, tenant, 600_000)
        second = await es.sale(db, clock, tenant, 600_000)
        await asyncio.gather(
            ledger.credit(db, clock, first, signals=signals),
            ledger.credit(db, clock, second, signals=signals),
        )
    kinds = [kind for event in (first, second) for kind, _ in await entries_of(db, event.id)]
    assert kinds.count(EntryKind.TIER_UPLIFT) == 1
    assert kinds.count(EntryKind.COMMISSION) == 2
