"""Sales and won deals of subscription products start or extend subscriptions; billing
changes follow the rules (through the services)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlmodel import col, select

from infra.clock import OffsetClock
from infra.db import Database, begin_write
from infra.errors import DomainError
from infra.outbox import OutboxEvent
from partners.roles import Role
from schema.context import Services
from subscriptions import renewals, service
from subscriptions.errors import SubscriptionErrorCode
from subscriptions.models import (
    ChangeKind,
    ChangeSource,
    Subscription,
    SubscriptionChange,
    SubscriptionStatus,
)
from subscriptions.origination import Origin, apply_origin, cancel_reversed
from tests.factories import Tenant, approve_sale, blocked_on_a_lock, dispatch, reverse_sale
from tests.subscriptions import scenarios as ss


@pytest.fixture(autouse=True)
async def catalogue(db: Database, clock: OffsetClock, tenant: Tenant) -> None:
    clock.freeze(ss.T0)
    await ss.seed(db, clock, tenant)


async def changes_of(db: Database, subscription_id: object) -> list[SubscriptionChange]:
    async with db.session() as session:
        rows = await session.exec(
            select(SubscriptionChange)
            .where(SubscriptionChange.subscription_id == subscription_id)
            .order_by(col(SubscriptionChange.effective_at), col(SubscriptionChange.id))
        )
        return list(rows)


async def test_a_sale_of_a_subscription_product_starts_one_once(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    event, sub = await ss.first_sale(db, clock, tenant, services)
    assert (sub.sku, sub.amount_minor, sub.currency, sub.term_months) == (
        "NW-CLOUD-1Y", 120_000, "USD", 12,
    )  # fmt: skip
    assert sub.starts_at == ss.T0
    assert sub.ends_at == ss.T0.replace(year=2027)
    assert sub.partner_id == tenant.partners[0].id
    assert sub.status is SubscriptionStatus.ACTIVE
    # A one-off product starts nothing; a re-run of the handler changes nothing.
    await approve_sale(db, clock, tenant, sku="NW-ROUTER-X1", customer="Initech GmbH")
    await dispatch(services)
    async with db.transaction() as session:
        assert await apply_origin(session, clock, Origin.of(event)) == 0
        count = len(list(await session.exec(select(Subscription))))
    assert count == 1
    assert [c.kind for c in await changes_of(db, sub.id)] == [ChangeKind.STARTED]


async def test_another_sale_to_the_account_extends_it_and_moves_attribution(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    _, sub = await ss.first_sale(db, clock, tenant, services)
    clock.advance(timedelta(days=300))
    # The same customer, spelled differently, buys the next year from partner 1.
    await approve_sale(
        db, clock, tenant, partner=1, amount=130_000, sku="NW-CLOUD-1Y", customer="INITECH gmbh."
    )
    await dispatch(services)
    async with db.session() as session:
        again = await session.get(Subscription, sub.id)
    assert again is not None
    assert (again.partner_id, again.amount_minor, again.renewals) == (
        tenant.partners[1].id, 130_000, 1,
    )  # fmt: skip
    assert again.term_start == sub.ends_at
    assert again.ends_at == sub.ends_at.replace(year=2028)


async def test_billing_changes_and_their_refusals(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    _, sub = await ss.first_sale(db, clock, tenant, services)
    admin = tenant.principal(Role.VENDOR_ADMIN)

    async def report(kind: ChangeKind, key: str, **kw: object) -> Subscription:
        async with db.transaction() as session:
            return await service.report_change(
                session, admin, clock, subscription_id=sub.id, kind=kind, external_id=key,
                **kw,  # type: ignore[arg-type]
            )  # fmt: skip

    refused = {
        SubscriptionErrorCode.NEGATIVE_AMOUNT: (ChangeKind.EXPANDED, {"amount_minor": -1}),
        SubscriptionErrorCode.CURRENCY_MISMATCH: (
            ChangeKind.RENEWED, {"amount_minor": 1, "currency": "EUR"},
        ),
        SubscriptionErrorCode.BEFORE_START: (
            ChangeKind.CANCELLED, {"effective_at": ss.T0 - timedelta(days=1)},
        ),
        SubscriptionErrorCode.NOT_AN_EXPANSION: (ChangeKind.EXPANDED, {"amount_minor": 100}),
    }  # fmt: skip
    for code, (kind, kw) in refused.items():
        with pytest.raises(DomainError) as caught:
            await report(kind, f"bad-{code}", **kw)
        assert caught.value.code is code
    assert [c.kind for c in await changes_of(db, sub.id)] == [ChangeKind.STARTED]

    renewed = await report(ChangeKind.RENEWED, "inv-1")
    assert (renewed.renewals, renewed.ends_at) == (1, ss.T0.replace(year=2028))
    assert (await report(ChangeKind.RENEWED, "inv-1")).renewals == 1  # replayed: unchanged
    with pytest.raises(DomainError) as reused:
        await report(ChangeKind.EXPANDED, "inv-1", amount_minor=200_000)
    assert reused.value.code is SubscriptionErrorCode.EXTERNAL_ID_REUSED
    await report(ChangeKind.CANCELLED, "inv-2", effective_at=ss.T0 + timedelta(days=3))
    with pytest.raises(DomainError) as after:
        await report(ChangeKind.RENEWED, "inv-3")
    assert after.value.code is SubscriptionErrorCode.ALREADY_CANCELLED


async def test_renewals_due_carry_an_explained_probability(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    _, sub = await ss.first_sale(db, clock, tenant, services)
    clock.advance(timedelta(days=340))  # 25 days before the end
    async with db.session() as session:
        due = await renewals.renewals_due(
            session, tenant.vendor.id, tenant.partners[0].id, clock.now() + timedelta(days=30),
            since=clock.now(),
        )  # fmt: skip
        later = await renewals.renewals_due(
            session, tenant.vendor.id, tenant.partners[1].id, clock.now() + timedelta(days=30),
            since=clock.now(),
        )  # fmt: skip
    assert [d.subscription.id for d in due] == [sub.id]
    assert later == []
    # No history anywhere: the uniform prior, 50%.
    assert due[0].estimate.probability_bp == 5_000
    assert due[0].account.name == "Initech GmbH"
    assert "renewed 0 of 0 times" in due[0].estimate.factors[0].text


async def test_a_reversed_sale_cancels_the_subscription_it_started(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    event, sub = await ss.first_sale(db, clock, tenant, services)
    clock.advance(timedelta(days=10))
    reversal = await reverse_sale(db, clock, tenant, event, reason="refund")
    await ss.settle(services)
    async with db.session() as session:
        again = await session.get(Subscription, sub.id)
    assert again is not None
    assert (again.status, again.cancelled_at) == (SubscriptionStatus.CANCELLED, clock.now())
    kinds = [(c.kind, c.external_id) for c in await changes_of(db, sub.id)]
    assert kinds == [
        (ChangeKind.STARTED, f"sale:{event.id}:0"),
        (ChangeKind.CANCELLED, f"reversal:{reversal.id}:0"),
    ]
    async with db.transaction() as session:
        stored = await session.get(OutboxEvent, reversal.id)
        assert stored is not None
        assert await cancel_reversed(session, clock, stored) == 0  # a re-run changes nothing


async def test_a_reversal_and_a_billing_cancellation_at_once_cancel_once(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    """The billing system cancels the subscription while the sale that started it is being
    reversed: the reversal's handler waits for the billing report's lock and then finds the
    subscription cancelled, so there is one cancellation (and one clawback), not two. On
    PostgreSQL they really overlap; on SQLite the write lock makes them take turns."""
    event, sub = await ss.first_sale(db, clock, tenant, services)
    clock.advance(timedelta(days=10))
    async with services.outbox.paused():
        reversal = await reverse_sale(db, clock, tenant, event, reason="refund")
        async with db.transaction() as billing, db.session() as watching:
            await service.report_change(
                billing, tenant.principal(Role.VENDOR_ADMIN), clock, subscription_id=sub.id,
                kind=ChangeKind.CANCELLED, external_id="bill-cancel-1",
            )  # fmt: skip

            async def handle() -> int:
                async with db.transaction() as session:
                    await begin_write(session)
                    stored = await session.get(OutboxEvent, reversal.id)
                    assert stored is not None
                    return await cancel_reversed(session, clock, stored)

            handling = asyncio.create_task(handle())
            await blocked_on_a_lock(watching, handling)
        assert await handling == 0
    kinds = [(c.kind, c.source, c.external_id) for c in await changes_of(db, sub.id)]
    assert kinds == [
        (ChangeKind.STARTED, ChangeSource.SALE, f"sale:{event.id}:0"),
        (ChangeKind.CANCELLED, ChangeSource.BILLING, "bill-cancel-1"),
    ]
