"""Payout statements through the services: every hold reason, the decision trail, and
paying once under concurrency."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from earnings import payouts
from earnings.errors import EarningsErrorCode
from earnings.models import (
    DecisionAction,
    HoldReason,
    PayoutDecision,
    PayoutStatement,
    PayoutStatus,
)
from infra.clock import OffsetClock
from infra.db import Database
from infra.errors import DomainError
from partners.roles import Role
from schema.context import Services
from tests.earnings import scenarios as es
from tests.earnings.scenarios import generate, holds_of, tax_form, tx
from tests.factories import Tenant, dispatch

MARCH = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
APRIL = datetime(2026, 4, 1, 0, 0, tzinfo=UTC)


class FlaggedClaims:
    """A stand-in for the sale-claim service's risk flags: real data held in memory."""

    def __init__(self) -> None:
        self.flags: dict[uuid.UUID, list[str]] = {}

    async def risk_flags(
        self, session: AsyncSession, vendor_id: uuid.UUID, claim_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[str]]:
        return {c: self.flags[c] for c in claim_ids if c in self.flags}

    async def approved_share_bp(
        self,
        session: AsyncSession,
        vendor_id: uuid.UUID,
        partner_id: uuid.UUID,
        since: datetime,
        until: datetime,
    ) -> int | None:
        return None

    async def oldest_decided_claim(
        self,
        session: AsyncSession,
        vendor_id: uuid.UUID,
        partner_id: uuid.UUID,
        since: datetime,
        until: datetime,
    ) -> datetime | None:
        return None


@pytest.fixture
def flagged() -> FlaggedClaims:
    return FlaggedClaims()


@pytest.fixture
async def march(db: Database, clock: OffsetClock, tenant: Tenant) -> None:
    clock.freeze(MARCH)
    await es.make_program(db, clock, tenant, es.Rules(base_rates=(es.BaseRate(1_000),)))


async def decisions_of(db: Database, statement: PayoutStatement) -> list[PayoutDecision]:
    async with db.session() as session:
        rows = await session.exec(
            select(PayoutDecision)
            .where(PayoutDecision.statement_id == statement.id)
            .order_by(col(PayoutDecision.id))
        )
        return list(rows)


async def statement_status(db: Database, statement: PayoutStatement) -> PayoutStatus:
    async with db.session() as session:
        found = await session.get(PayoutStatement, statement.id)
        assert found is not None
        return found.status


@pytest.mark.usefixtures("march")
async def test_clean_statement_goes_pending_approved_paid_with_decisions(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    await tax_form(db, clock, tenant)
    await es.sale(db, clock, tenant, 100_000)
    await es.sale(db, clock, tenant, 50_000)
    await dispatch(services)
    clock.freeze(APRIL + timedelta(days=1))
    [statement] = await generate(db, clock, tenant, services.claim_signals)
    assert (statement.total_minor, statement.entry_count) == (15_000, 2)  # 10% of 1,500.00
    assert statement.status is PayoutStatus.PENDING
    assert (
        await generate(db, clock, tenant, services.claim_signals) == []
    )  # already made: left alone
    fin = tenant.principal(Role.FINANCE)
    await tx(db, lambda s: payouts.approve(s, fin, clock, statement_id=statement.id))
    await tx(db, lambda s: payouts.mark_paid(s, fin, clock, statement_id=statement.id))
    decisions = await decisions_of(db, statement)
    assert [d.action for d in decisions] == [
        DecisionAction.GENERATE, DecisionAction.APPROVE, DecisionAction.PAY,
    ]  # fmt: skip
    pay = decisions[-1]
    assert pay.amount_minor == 15_000
    assert pay.actor_user_id == fin.user_id
    assert pay.data_version == statement.data_version
    assert pay.program_version_ids == statement.program_version_ids
    assert len(pay.program_version_ids) == 1


async def test_a_month_that_has_not_ended_has_no_statement(
    db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    clock.freeze(MARCH)
    with pytest.raises(DomainError) as caught:
        await tx(
            db,
            lambda s: payouts.generate_statements(
                s, tenant.principal(Role.FINANCE), clock, month=MARCH, signals=FlaggedClaims()
            ),
        )
    assert caught.value.code is EarningsErrorCode.PERIOD_NOT_ENDED


@pytest.mark.usefixtures("march")
async def test_missing_tax_form_holds_until_the_form_is_on_file(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    await es.sale(db, clock, tenant, 100_000)
    await dispatch(services)
    clock.freeze(APRIL + timedelta(days=1))
    [statement] = await generate(db, clock, tenant, services.claim_signals)
    [hold] = await holds_of(db, statement)
    assert hold.reason is HoldReason.MISSING_TAX_FORM
    assert statement.status is PayoutStatus.HELD
    fin = tenant.principal(Role.FINANCE)
    with pytest.raises(DomainError) as caught:
        await tx(db, lambda s: payouts.approve(s, fin, clock, statement_id=statement.id))
    assert caught.value.code is EarningsErrorCode.PAYOUT_HELD
    with pytest.raises(DomainError) as caught:
        await tx(db, lambda s: payouts.release(s, fin, clock, hold_id=hold.id))
    assert caught.value.code is EarningsErrorCode.HOLD_CONDITION_PERSISTS
    assert await statement_status(db, statement) is PayoutStatus.HELD
    await tax_form(db, clock, tenant)  # releases the hold: the condition cleared
    assert await statement_status(db, statement) is PayoutStatus.PENDING
    with pytest.raises(DomainError) as caught:
        await tx(db, lambda s: payouts.release(s, fin, clock, hold_id=hold.id, note="form in"))
    assert caught.value.code is EarningsErrorCode.HOLD_ALREADY_RELEASED
    await tx(db, lambda s: payouts.approve(s, fin, clock, statement_id=statement.id))
    assert await statement_status(db, statement) is PayoutStatus.APPROVED


async def test_far_above_trailing_average_is_held_for_review(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    clock.freeze(datetime(2026, 1, 5, tzinfo=UTC))
    await es.make_program(db, clock, tenant, es.Rules(base_rates=(es.BaseRate(1_000),)))
    await tax_form(db, clock, tenant)
    await tx(
        db,
        lambda s: payouts.set_policy(
            s,
            tenant.principal(Role.FINANCE),
            clock,
            above_average_factor_bp=30_000,
            trailing_statements=2,
        ),
    )
    made: list[PayoutStatement] = []
    for amount in (100_000, 200_000, 600_001):  # earns 100.00, 200.00, then 600.00 (+0.01)
        await es.sale(db, clock, tenant, amount)
        await dispatch(services)
        clock.freeze(payouts.next_month(payouts.month_start(clock.now())) + timedelta(days=2))
        made += await generate(db, clock, tenant, services.claim_signals)
    assert [s.total_minor for s in made] == [10_000, 20_000, 60_000]
    assert [s.status for s in made] == [PayoutStatus.PENDING] * 2 + [PayoutStatus.HELD]
    [hold] = await holds_of(db, made[2])
    # 600.00 against an average of 150.00 is 4x, above the policy's 3x.
    assert hold.reason is HoldReason.ABOVE_TRAILING_AVERAGE
    assert "4x the average of the last 2 statements (150.00 USD)" in hold.internal_note
    assert hold.expected_release_at == clock.now() + timedelta(days=14)
    why, _ = payouts.hold_explanation(hold)
    assert "150.00" not in why
    assert "4x" not in why


@pytest.mark.usefixtures("march")
async def test_risk_flags_on_underlying_claims_hold_the_payout(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services, flagged: FlaggedClaims
) -> None:
    await tax_form(db, clock, tenant)
    clean = await es.sale(db, clock, tenant, 100_000)
    risky = await es.sale(db, clock, tenant, 100_000)
    flagged.flags[uuid.UUID(risky.payload["claim_id"])] = ["serial seen at another partner"]
    await dispatch(services)
    clock.freeze(APRIL + timedelta(days=1))
    [statement] = await generate(db, clock, tenant, flagged)
    [hold] = await holds_of(db, statement)
    assert hold.reason is HoldReason.RISK_FLAGS
    assert hold.risk_flags == [f"claim {risky.payload['claim_id']}: serial seen at another partner"]
    assert clean.payload["claim_id"] not in " ".join(hold.risk_flags)
    why, clears = payouts.hold_explanation(hold)
    assert "serial" not in why + clears
    assert "flag" not in (why + clears).lower()


@pytest.mark.usefixtures("march")
async def test_a_bank_account_shared_between_partners_holds_both(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    fin = tenant.principal(Role.FINANCE)
    for index, account in ((0, "DE89 3704 0044 0532 0130 00"), (1, "de89370400440532013000")):
        await tx(
            db,
            lambda s, i=index, a=account: payouts.set_profile(
                s, fin, clock, partner_id=tenant.partners[i].id, tax_form_on_file=True,
                bank_account=a,
            ),
        )  # fmt: skip
        await es.sale(db, clock, tenant, 100_000, partner_index=index)
    await dispatch(services)
    clock.freeze(APRIL + timedelta(days=1))
    statements = await generate(db, clock, tenant, services.claim_signals)
    assert len(statements) == 2
    for statement in statements:
        [hold] = await holds_of(db, statement)
        assert hold.reason is HoldReason.SHARED_BANK_ACCOUNT
        other = tenant.partners[1 if statement.partner_id == tenant.partners[0].id else 0]
        assert other.name in hold.internal_note
        assert other.name not in " ".join(payouts.hold_explanation(hold))


@pytest.mark.usefixtures("march")
async def test_manual_hold_blocks_approval_until_released(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    await tax_form(db, clock, tenant)
    await es.sale(db, clock, tenant, 100_000)
    await dispatch(services)
    clock.freeze(APRIL + timedelta(days=1))
    [statement] = await generate(db, clock, tenant, services.claim_signals)
    fin = tenant.principal(Role.FINANCE)
    hold = await tx(
        db,
        lambda s: payouts.hold(
            s, fin, clock, statement_id=statement.id, note="chargeback dispute #42",
            expected_release_at=clock.now() + timedelta(days=7),
        ),
    )  # fmt: skip
    assert hold.reason is HoldReason.MANUAL
    with pytest.raises(DomainError) as caught:
        await tx(db, lambda s: payouts.approve(s, fin, clock, statement_id=statement.id))
    assert caught.value.code is EarningsErrorCode.PAYOUT_HELD
    assert await statement_status(db, statement) is PayoutStatus.HELD
    await tx(db, lambda s: payouts.release(s, fin, clock, hold_id=hold.id, note="resolved"))
    with pytest.raises(DomainError) as caught:
        await tx(db, lambda s: payouts.release(s, fin, clock, hold_id=hold.id))
    assert caught.value.code is EarningsErrorCode.HOLD_ALREADY_RELEASED
    await tx(db, lambda s: payouts.approve(s, fin, clock, statement_id=statement.id))
    actions = [(d.action, d.reason) for d in await decisions_of(db, statement)]
    assert actions == [
        (DecisionAction.GENERATE, None),
        (DecisionAction.HOLD, HoldReason.MANUAL),
        (DecisionAction.RELEASE, HoldReason.MANUAL),
        (DecisionAction.APPROVE, None),
    ]


@pytest.mark.usefixtures("march")
async def test_paying_twice_at_once_pays_once(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    await tax_form(db, clock, tenant)
    await es.sale(db, clock, tenant, 100_000)
    await dispatch(services)
    clock.freeze(APRIL + timedelta(days=1))
    [statement] = await generate(db, clock, tenant, services.claim_signals)
    fin = tenant.principal(Role.FINANCE)
    await tx(db, lambda s: payouts.approve(s, fin, clock, statement_id=statement.id))

    async def pay() -> str:
        try:
            await tx(db, lambda s: payouts.mark_paid(s, fin, clock, statement_id=statement.id))
        except DomainError as error:
            return error.code.value
        return "PAID"

    results = await asyncio.gather(*(pay() for _ in range(4)))
    assert sorted(results) == ["INVALID_STATUS"] * 3 + ["PAID"]
    pays = [d for d in await decisions_of(db, statement) if d.action is DecisionAction.PAY]
    assert len(pays) == 1
