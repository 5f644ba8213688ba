"""A credit that began before a month ended and commits after finance made the month's
statements (a dispatcher that stalled across midnight, a host whose clock runs behind) is
paid by one statement: the month's, when its statements waited for the credit, else the
next month's. It was booked in the ended month behind its statement's back: no statement
paid it, while the partner's summary said it was paid with that month (found reasoning
about a stalled dispatcher beside the payout-run kills, PostgreSQL; on SQLite a prize or an
adjustment could too). Both orders are driven here, on the real database."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import col, select

from earnings import ledger, payouts
from earnings.models import EarningEntry, PayoutStatement
from infra.clock import OffsetClock
from infra.db import Database, begin_write
from partners.roles import Role
from schema.context import Services
from tests.earnings import scenarios as es
from tests.factories import Tenant, approve_sale, blocked_on_a_lock, dispatch

MARCH = datetime(2026, 3, 1, tzinfo=UTC)
APRIL = datetime(2026, 4, 1, tzinfo=UTC)
LAST_SECOND = APRIL - timedelta(seconds=1)


def _at(instant: datetime) -> OffsetClock:
    clock = OffsetClock()
    clock.freeze(instant)
    return clock


async def _paid_by_statements(db: Database, tenant: Tenant) -> None:
    """Every entry of March is in March's statement, and its total is theirs."""
    async with db.session() as session:
        [statement] = list(
            await session.exec(
                select(PayoutStatement).where(PayoutStatement.vendor_id == tenant.vendor.id)
            )
        )
        total, count = (
            await session.exec(
                select(func.sum(EarningEntry.amount_minor), func.count()).where(
                    EarningEntry.partner_id == statement.partner_id,
                    col(EarningEntry.booked_at) >= MARCH,
                    col(EarningEntry.booked_at) < APRIL,
                )
            )
        ).one()
    assert (statement.total_minor, statement.entry_count) == (int(total), count)


@pytest.fixture
async def march(db: Database, clock: OffsetClock, tenant: Tenant, services: Services) -> None:
    clock.freeze(MARCH)
    await es.make_program(db, clock, tenant, es.Rules(base_rates=(es.BaseRate(1_000),)))
    await es.sale(db, clock, tenant, 100_000)  # credited in March: the statement has one
    await dispatch(services)


async def _generate(db: Database, tenant: Tenant, services: Services) -> list[PayoutStatement]:
    async with db.transaction() as session:
        await begin_write(session)
        return await payouts.generate_statements(
            session, tenant.principal(Role.FINANCE), _at(APRIL + timedelta(hours=1)),
            month=MARCH, signals=services.claim_signals,
        )  # fmt: skip


Book = Callable[[Any, OffsetClock], Awaitable[None]]


async def _sale(db: Database, tenant: Tenant, services: Services) -> Book:
    event = await approve_sale(db, _at(LAST_SECOND), tenant, amount=50_000)

    async def book(session: Any, clock: OffsetClock) -> None:
        await ledger.credit_in_session(session, clock, event, signals=services.claim_signals)

    return book


async def _adjustment(db: Database, tenant: Tenant, services: Services) -> Book:
    async def book(session: Any, clock: OffsetClock) -> None:
        await ledger.adjust(
            session, tenant.principal(Role.FINANCE), clock, partner_id=tenant.partners[0].id,
            amount_minor=2_500, currency="USD", note="late", idempotency_key="late-1",
        )  # fmt: skip

    return book


@pytest.mark.usefixtures("march")
@pytest.mark.parametrize("credit", [_sale, _adjustment], ids=["sale", "adjustment"])
async def test_a_credit_under_way_as_the_statements_are_made_is_in_the_months(
    db: Database, tenant: Tenant, services: Services, credit: Callable[..., Awaitable[Book]]
) -> None:
    """The credit holds its transaction open past midnight; the statements wait for it."""
    async with services.outbox.paused():  # the credit is the test's to make
        book = await credit(db, tenant, services)
        async with db.transaction() as session:
            await begin_write(session)
            await book(session, _at(LAST_SECOND))
            generating = asyncio.create_task(_generate(db, tenant, services))
            await blocked_on_a_lock(session, generating)
        await generating
    await _paid_by_statements(db, tenant)


@pytest.mark.usefixtures("march")
@pytest.mark.parametrize("credit", [_sale, _adjustment], ids=["sale", "adjustment"])
async def test_a_credit_that_comes_once_the_statements_are_made_is_in_the_next_month(
    db: Database, tenant: Tenant, services: Services, credit: Callable[..., Awaitable[Book]]
) -> None:
    """The credit's clock still says March (it read it before a stall, or runs behind)
    while the statements are made; it books into April, the first month still open."""
    async with services.outbox.paused():  # the credit is the test's to make
        book = await credit(db, tenant, services)
        async with db.transaction() as session:
            await begin_write(session)
            await payouts.generate_statements(
                session, tenant.principal(Role.FINANCE), _at(APRIL + timedelta(hours=1)),
                month=MARCH, signals=services.claim_signals,
            )  # fmt: skip

            async def late() -> None:
                async with db.transaction() as credit_session:
                    await begin_write(credit_session)
                    await book(credit_session, _at(LAST_SECOND))

            booking = asyncio.create_task(late())
            await blocked_on_a_lock(session, booking)
        await booking
    await _paid_by_statements(db, tenant)
    async with db.session() as session:
        latest = await session.scalar(
            select(func.max(EarningEntry.booked_at)).where(
                EarningEntry.vendor_id == tenant.vendor.id
            )
        )
    assert latest == APRIL  # the first instant of the first month without statements
