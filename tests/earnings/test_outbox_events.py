"""The events earnings records for integrations and notifications: every credit's
``EarningsChanged`` lists the entries it wrote (kind, amount, the partner's explanation),
and every payout statement status change is a ``PayoutStatementStatusChanged`` with its
hold reason, recorded in the transaction of the change."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlmodel import col, select

from earnings import payouts
from earnings.events import (
    EARNINGS_CHANGED,
    PAYOUT_STATEMENT_STATUS_CHANGED,
    EarningsChanged,
    PayoutStatementStatusChanged,
)
from earnings.models import EarningEntry
from infra.clock import OffsetClock
from infra.db import Database
from infra.errors import DomainError
from infra.outbox import OutboxEvent
from partners.roles import Role
from schema.context import Services
from tests.earnings import scenarios as es
from tests.earnings.scenarios import tx
from tests.factories import Tenant, dispatch

OCTOBER = datetime(2026, 10, 5, 9, 0, tzinfo=UTC)
NOVEMBER = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


async def events_of(db: Database, type_: str) -> list[OutboxEvent]:
    async with db.session() as session:
        rows = await session.exec(
            select(OutboxEvent).where(OutboxEvent.type == type_).order_by(col(OutboxEvent.id))
        )
        return list(rows)


async def test_a_credit_lists_the_entries_it_wrote(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    await es.make_program(db, clock, tenant, es.Rules(base_rates=(es.BaseRate(1_000),)))
    sale = await es.sale(db, clock, tenant, 100_000)
    await dispatch(services)

    [changed] = [EarningsChanged.parse(e.payload) for e in await events_of(db, EARNINGS_CHANGED)]
    async with db.session() as session:
        [entry] = list(await session.exec(select(EarningEntry)))
    assert changed.partner_id == tenant.partners[0].id
    [created] = changed.entries
    assert created.entry_id == entry.id
    assert (created.kind, created.amount_minor, created.currency) == ("COMMISSION", 10_000, "USD")
    assert created.explanation == entry.rule
    assert created.explanation.startswith("Partner Rewards: ")
    assert created.source_event_id == sale.id
    assert created.rep_user_id == tenant.user(Role.PARTNER_REP).id


async def test_payout_status_changes_are_events_with_their_reasons(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    clock.freeze(OCTOBER)
    await es.make_program(db, clock, tenant, es.Rules(base_rates=(es.BaseRate(1_000),)))
    await es.sale(db, clock, tenant, 100_000)
    await dispatch(services)
    clock.freeze(NOVEMBER)
    [statement] = await es.generate(db, clock, tenant, services.claim_signals)  # no tax form
    finance = tenant.principal(Role.FINANCE)
    await es.tax_form(db, clock, tenant)  # releases the automatic hold
    await tx(db, lambda s: payouts.approve(s, finance, clock, statement_id=statement.id))
    await tx(db, lambda s: payouts.mark_paid(s, finance, clock, statement_id=statement.id))

    changes = [
        PayoutStatementStatusChanged.parse(e.payload)
        for e in await events_of(db, PAYOUT_STATEMENT_STATUS_CHANGED)
    ]
    assert [(c.from_status, c.to_status, c.reason) for c in changes] == [
        (None, "PENDING", None),
        ("PENDING", "HELD", "MISSING_TAX_FORM"),
        ("HELD", "PENDING", "MISSING_TAX_FORM"),
        ("PENDING", "APPROVED", None),
        ("APPROVED", "PAID", None),
    ]
    assert {(c.statement_id, c.partner_id, c.total_minor, c.currency) for c in changes} == {
        (statement.id, tenant.partners[0].id, 10_000, "USD")
    }
    assert changes[0].period_start == datetime(2026, 10, 1, tzinfo=UTC)
    assert changes[0].period_end == datetime(2026, 11, 1, tzinfo=UTC)


async def test_a_refused_payout_change_records_no_event(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    clock.freeze(OCTOBER)
    await es.make_program(db, clock, tenant, es.Rules(base_rates=(es.BaseRate(1_000),)))
    await es.sale(db, clock, tenant, 100_000)
    await dispatch(services)
    clock.freeze(NOVEMBER)
    await es.tax_form(db, clock, tenant)
    [statement] = await es.generate(db, clock, tenant, services.claim_signals)
    before = len(await events_of(db, PAYOUT_STATEMENT_STATUS_CHANGED))
    finance = tenant.principal(Role.FINANCE)
    with pytest.raises(DomainError, match="not APPROVED"):
        await tx(db, lambda s: payouts.mark_paid(s, finance, clock, statement_id=statement.id))
    assert len(await events_of(db, PAYOUT_STATEMENT_STATUS_CHANGED)) == before
