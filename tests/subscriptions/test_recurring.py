"""Recurring commission rules through the services: the declining schedule and its caps,
the multi-year escalator, the expansion bonus on the net increase, the clawback window,
the retention bonus's conditions, rule validation; and imported renewals credited like
reported ones."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from sqlmodel import col, select

from earnings import recurring
from earnings.events import EARNINGS_CHANGED, EarningsChanged
from earnings.models import EarningEntry, EntryKind
from earnings.programs import BaseRate, Recurring, Rules, validate_rules
from infra.clock import OffsetClock
from infra.db import Database
from infra.outbox import OutboxEvent
from partners.roles import Role
from schema.context import Services
from subscriptions import imports, service
from subscriptions.events import SUBSCRIPTION_EVENT_TYPES, SubscriptionChanged
from subscriptions.models import ChangeKind, Subscription, SubscriptionChange, SubscriptionStatus
from tests.earnings.scenarios import make_program
from tests.factories import Tenant, approve_sale, reverse_sale
from tests.subscriptions import scenarios as ss
from tests.support import refused_inserts


@pytest.fixture(autouse=True)
async def catalogue(db: Database, clock: OffsetClock, tenant: Tenant) -> None:
    clock.freeze(ss.T0)
    await ss.seed(db, clock, tenant)


async def program(db: Database, clock: OffsetClock, tenant: Tenant, r: Recurring) -> None:
    await make_program(db, clock, tenant, Rules(base_rates=(BaseRate(rate_bp=0),), recurring=r))


async def report(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services, sub: Subscription,
    kind: ChangeKind, key: str, **kw: object,
) -> None:  # fmt: skip
    async with db.transaction() as session:
        await service.report_change(
            session, tenant.principal(Role.FINANCE), clock, subscription_id=sub.id, kind=kind,
            external_id=key, **kw,  # type: ignore[arg-type]
        )  # fmt: skip
    await ss.settle(services)


async def recurring_entries(db: Database) -> list[tuple[EntryKind, int]]:
    async with db.session() as session:
        rows = await session.exec(
            select(EarningEntry)
            .where(col(EarningEntry.kind) != EntryKind.COMMISSION)
            .order_by(col(EarningEntry.booked_at), col(EarningEntry.id))
        )
        return [(e.kind, e.amount_minor) for e in rows]


async def test_declining_schedule_capped_in_renewals(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    await program(db, clock, tenant, Recurring(renewal_schedule_bp=(1000, 800, 500),
                                               max_renewals=4))  # fmt: skip
    _, sub = await ss.first_sale(db, clock, tenant, services)
    for n in range(1, 6):
        clock.advance(timedelta(days=365))
        await report(db, clock, tenant, services, sub, ChangeKind.RENEWED, f"r{n}")
    # 10%, 8%, 5%, then the last entry again, and nothing after the 4th renewal.
    assert await recurring_entries(db) == [
        (EntryKind.RENEWAL_COMMISSION, 12_000), (EntryKind.RENEWAL_COMMISSION, 9_600),
        (EntryKind.RENEWAL_COMMISSION, 6_000), (EntryKind.RENEWAL_COMMISSION, 6_000),
    ]  # fmt: skip


async def test_cap_in_months_and_the_multi_year_escalator(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    await program(db, clock, tenant, Recurring(renewal_rate_bp=1000, max_months=72,
                                               multi_year_escalator_bp=100))  # fmt: skip
    _, sub = await ss.first_sale(db, clock, tenant, services, sku=ss.CLOUD_3Y.sku, amount=300_000)
    clock.advance(timedelta(days=1000))
    await report(db, clock, tenant, services, sub, ChangeKind.RENEWED, "r1")  # term at 36 months
    clock.advance(timedelta(days=1100))
    await report(db, clock, tenant, services, sub, ChangeKind.RENEWED, "r2")  # at 72: capped
    # 10% of 3,000.00, and the escalator: 1% for each of 2 years beyond the first.
    assert await recurring_entries(db) == [
        (EntryKind.RENEWAL_COMMISSION, 30_000), (EntryKind.ESCALATOR, 6_000),
    ]  # fmt: skip


async def test_expansion_bonus_pays_the_net_increase_above_the_peak_once(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    await program(db, clock, tenant, Recurring(expansion_bonus_bp=1000))
    _, sub = await ss.first_sale(db, clock, tenant, services)
    usd = "USD"
    await report(db, clock, tenant, services, sub, ChangeKind.EXPANDED, "x1",
                 amount_minor=150_000, currency=usd)  # fmt: skip
    await report(db, clock, tenant, services, sub, ChangeKind.CONTRACTED, "c1",
                 amount_minor=100_000, currency=usd)  # fmt: skip
    await report(db, clock, tenant, services, sub, ChangeKind.EXPANDED, "x2",
                 amount_minor=160_000, currency=usd)  # fmt: skip
    # +300.00, then back above the 1,500.00 peak by only 100.00.
    assert await recurring_entries(db) == [
        (EntryKind.EXPANSION_BONUS, 3_000), (EntryKind.EXPANSION_BONUS, 1_000),
    ]  # fmt: skip


async def test_cancelled_after_the_window_keeps_what_was_earned(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    await program(db, clock, tenant, Recurring(renewal_rate_bp=1000, clawback_days=30))
    _, sub = await ss.first_sale(db, clock, tenant, services)
    clock.advance(timedelta(days=366))
    await report(db, clock, tenant, services, sub, ChangeKind.RENEWED, "r1")
    clock.advance(timedelta(days=40))  # 40 days into the term
    await report(db, clock, tenant, services, sub, ChangeKind.CANCELLED, "c1")
    assert await recurring_entries(db) == [(EntryKind.RENEWAL_COMMISSION, 12_000)]


async def test_retention_needs_the_account_active_at_the_mark(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    await program(db, clock, tenant, Recurring(retention_months=6, retention_bonus_minor=2_500))
    _, kept = await ss.first_sale(db, clock, tenant, services)
    _, lost = await ss.first_sale(db, clock, tenant, services, customer="Hooli")
    clock.advance(timedelta(days=100))
    await report(db, clock, tenant, services, lost, ChangeKind.CANCELLED, "c1")
    assert await recurring.credit_retention(db, clock) == 0  # not 6 months yet
    clock.advance(timedelta(days=90))
    assert await recurring.credit_retention(db, clock) == 1
    assert await recurring.credit_retention(db, clock) == 0
    assert await recurring_entries(db) == [(EntryKind.RETENTION_BONUS, 2_500)]
    assert kept.id != lost.id


def test_recurring_rules_are_validated() -> None:
    bad = Rules(recurring=Recurring(
        renewal_rate_bp=-1, renewal_schedule_bp=(20_000,), max_renewals=0, clawback_days=-1,
        retention_bonus_minor=100,
    ))  # fmt: skip
    found = {(e.code.value, e.field) for e in validate_rules(bad)}
    assert found == {
        ("NEGATIVE_RATE", "rules.recurring.renewal_rate_bp"),
        ("INVALID_RATE", "rules.recurring.renewal_schedule_bp.0"),
        ("INVALID_RECURRING", "rules.recurring.max_renewals"),
        ("INVALID_RECURRING", "rules.recurring.clawback_days"),
        ("INVALID_RECURRING", "rules.recurring.retention_months"),
    }
    assert Rules.from_json(Rules(recurring=Recurring(renewal_schedule_bp=(5, 4))).to_json()) == (
        Rules(recurring=Recurring(renewal_schedule_bp=(5, 4)))
    )


async def test_imported_renewals_are_events_like_reported_ones(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    await program(db, clock, tenant, Recurring(renewal_rate_bp=1000))
    _, sub = await ss.first_sale(db, clock, tenant, services)
    clock.advance(timedelta(days=360))
    body = (
        "external_id,subscription,kind,effective_at\n"
        f"r1,{sub.id},RENEWED,{clock.now().isoformat()}\n"
    )
    async with db.transaction() as session:
        await imports.import_changes(
            session, tenant.principal(Role.VENDOR_ADMIN), clock, source=io.BytesIO(body.encode())
        )
    async with db.session() as session:
        events = list(
            await session.exec(
                select(OutboxEvent)
                .where(col(OutboxEvent.type).in_(SUBSCRIPTION_EVENT_TYPES))
                .order_by(col(OutboxEvent.id))
            )
        )
    renewed = SubscriptionChanged.parse(events[-1].payload)
    assert (events[-1].type, renewed.renewal_number, renewed.amount_after_minor) == (
        "SubscriptionRenewed", 1, 120_000,
    )  # fmt: skip
    assert renewed.to_payload() == events[-1].payload
    await ss.settle(services)
    assert await recurring_entries(db) == [(EntryKind.RENEWAL_COMMISSION, 12_000)]


def test_the_json_payload_is_the_payload() -> None:
    import json
    import uuid
    from datetime import UTC, datetime

    at = datetime(2026, 1, 5, 9, tzinfo=UTC)
    event = SubscriptionChanged(
        change_id=uuid.uuid4(), subscription_id=uuid.uuid4(), account_id=uuid.uuid4(),
        partner_id=uuid.uuid4(), rep_user_id=None, kind="RENEWED", sku='SKU-"1"',
        region="EMEA", currency="USD", term_months=12, amount_before_minor=1,
        amount_after_minor=2, arr_delta_minor=1, renewal_number=1,
        subscription_started_at=at, term_start=at, term_end=at, effective_at=at,
    )  # fmt: skip
    assert json.loads(event.to_json()) == event.to_payload()
    assert SubscriptionChanged.parse(event.to_payload()) == event


async def test_a_sale_that_extends_a_subscription_is_paid_once_and_its_reversal_undoes_it(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    """The sale's commission pays the term it adds: no renewal commission or escalator on top.
    Reversing the sale takes the term (and the attribution it moved) back."""
    await make_program(
        db, clock, tenant,
        Rules(base_rates=(BaseRate(rate_bp=1000),),
              recurring=Recurring(renewal_rate_bp=1000, clawback_days=30)),
    )  # fmt: skip
    _, sub = await ss.first_sale(db, clock, tenant, services)
    clock.advance(timedelta(days=300))
    extending = await approve_sale(
        db, clock, tenant, partner=1, amount=130_000, sku=ss.CLOUD.sku, customer="Initech GmbH"
    )
    await ss.settle(services)
    async with db.session() as session:
        extended = await session.get(Subscription, sub.id)
        assert extended is not None
        assert (extended.partner_id, extended.renewals) == (tenant.partners[1].id, 1)
    assert await recurring_entries(db) == []  # the sale's COMMISSION only
    assert await commissions(db) == [(tenant.partners[0].id, 12_000),
                                     (tenant.partners[1].id, 13_000)]  # fmt: skip

    clock.advance(timedelta(days=10))
    reversal = await reverse_sale(db, clock, tenant, extending)
    await ss.settle(services)
    async with db.session() as session:
        again = await session.get(Subscription, sub.id)
        assert again is not None
        history = list(
            await session.exec(
                select(SubscriptionChange)
                .where(SubscriptionChange.subscription_id == sub.id)
                .order_by(col(SubscriptionChange.recorded_at), col(SubscriptionChange.id))
            )
        )
    assert (again.partner_id, again.rep_user_id, again.region) == (
        sub.partner_id, sub.rep_user_id, sub.region,
    )  # fmt: skip
    assert (again.amount_minor, again.renewals, again.term_start, again.ends_at) == (
        sub.amount_minor, 0, sub.term_start, sub.ends_at,
    )  # fmt: skip
    assert again.status is SubscriptionStatus.ACTIVE
    assert [(c.kind, c.external_id) for c in history][-1] == (
        ChangeKind.REVERTED, f"reversal:{reversal.id}:0",
    )  # fmt: skip
    # The sale's commission was taken back; nothing recurring was ever paid on it.
    assert sum(a for p, a in await commissions(db) if p == tenant.partners[1].id) == 13_000
    assert await recurring_entries(db) == [(EntryKind.CLAWBACK, -13_000)]

    # The billing system's next renewal is the subscription's first, paid to partner 0.
    clock.advance(timedelta(days=60))
    await report(db, clock, tenant, services, again, ChangeKind.RENEWED, "r1")
    entries = await recurring_entries(db)
    assert entries[-1] == (EntryKind.RENEWAL_COMMISSION, 12_000)


async def commissions(db: Database) -> list[tuple[object, int]]:
    async with db.session() as session:
        rows = await session.exec(
            select(EarningEntry)
            .where(EarningEntry.kind == EntryKind.COMMISSION)
            .order_by(col(EarningEntry.booked_at), col(EarningEntry.id))
        )
        return [(e.partner_id, e.amount_minor) for e in rows]


async def test_earnings_changed_lists_every_recurring_entry(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    """Renewal, escalator, expansion, retention and clawback entries reach subscribers
    (``EarningsChanged.entries``, what ``earnings_entry.created`` webhooks deliver)."""
    await program(db, clock, tenant, Recurring(
        renewal_rate_bp=1000, multi_year_escalator_bp=100, expansion_bonus_bp=500,
        retention_months=6, retention_bonus_minor=2_500, clawback_days=30,
    ))  # fmt: skip
    _, sub = await ss.first_sale(db, clock, tenant, services)
    clock.advance(timedelta(days=200))
    assert await recurring.credit_retention(db, clock) == 1
    clock.advance(timedelta(days=166))
    await report(db, clock, tenant, services, sub, ChangeKind.RENEWED, "r1", term_months=24)
    clock.advance(timedelta(days=5))
    await report(db, clock, tenant, services, sub, ChangeKind.EXPANDED, "x1",
                 amount_minor=150_000, currency="USD")  # fmt: skip
    clock.advance(timedelta(days=5))
    await report(db, clock, tenant, services, sub, ChangeKind.CANCELLED, "c1")
    async with db.session() as session:
        written = {
            e.id: (e.kind, e.amount_minor, e.rule)
            for e in await session.exec(
                select(EarningEntry).where(col(EarningEntry.kind) != EntryKind.COMMISSION)
            )
        }
        events = await session.exec(select(OutboxEvent).where(OutboxEvent.type == EARNINGS_CHANGED))
        listed = {
            e.entry_id: (EntryKind(e.kind), e.amount_minor, e.explanation)
            for ev in events for e in EarningsChanged.parse(ev.payload).entries
        }  # fmt: skip
    assert {k for k, _, _ in written.values()} == {
        EntryKind.RENEWAL_COMMISSION, EntryKind.ESCALATOR, EntryKind.EXPANSION_BONUS,
        EntryKind.RETENTION_BONUS, EntryKind.CLAWBACK,
    }  # fmt: skip
    assert {i: v for i, v in listed.items() if i in written} == written


async def test_a_retention_bonus_that_fails_does_not_stop_the_others(
    db: Database, clock: OffsetClock, tenant: Tenant, other_tenant: Tenant, services: Services,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """The first vendor's bonus fails in the database, every time: the pass still pays the
    second vendor's, and the first's once the fault is gone."""
    await ss.seed(db, clock, other_tenant)
    for t in (tenant, other_tenant):  # the programs in this order: the pass's order
        await program(db, clock, t, Recurring(retention_months=6, retention_bonus_minor=2_500))
        await ss.first_sale(db, clock, t, services)
    clock.advance(timedelta(days=190))
    async with refused_inserts(db, "earning_source", tenant.vendor.id):
        await recurring.credit_retention(db, clock)  # (the app's checks may have been first)
        assert await bonuses(db) == {other_tenant.vendor.id: 2_500}
    assert str(tenant.vendor.id) in caplog.text  # logged with the vendor, then went on
    assert await recurring.credit_retention(db, clock) == 1
    assert await bonuses(db) == {tenant.vendor.id: 2_500, other_tenant.vendor.id: 2_500}


async def bonuses(db: Database) -> dict[object, int]:
    async with db.session() as session:
        rows = await session.exec(
            select(EarningEntry).where(EarningEntry.kind == EntryKind.RETENTION_BONUS)
        )
        return {e.vendor_id: e.amount_minor for e in rows}
