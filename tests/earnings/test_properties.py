"""Property tests: the rounding rule, tier boundaries, and reconciliation (sum of entries =
statement totals = paid + pending + held)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from fractions import Fraction

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from earnings import payouts, service
from earnings.models import EarningEntry, PayoutStatement, PayoutStatus
from earnings.programs import BaseRate, Rules, Standing, Tier, select_tier
from earnings.repository import Scope
from earnings.rounding import BP, apply_bp, divide_rounded
from infra.clock import OffsetClock
from infra.db import Database
from partners.roles import Role
from schema.context import Services
from tests.earnings import scenarios as es
from tests.earnings.scenarios import tax_form, tx
from tests.factories import create_tenant, dispatch, reverse_sale

amounts = st.integers(min_value=-(10**12), max_value=10**12)
rates = st.integers(min_value=0, max_value=BP)


@given(numerator=amounts, denominator=st.integers(min_value=1, max_value=10**6))
def test_division_rounds_half_away_from_zero(numerator: int, denominator: int) -> None:
    exact = Fraction(numerator, denominator)
    got = divide_rounded(numerator, denominator)
    assert abs(exact - got) <= Fraction(1, 2)
    if abs(exact - got) == Fraction(1, 2):  # a tie went away from zero
        assert abs(got) > abs(exact)


@given(amount=amounts, rate=rates)
def test_rates_are_exact_then_rounded_once_and_symmetric(amount: int, rate: int) -> None:
    assert abs(Fraction(amount * rate, BP) - apply_bp(amount, rate)) <= Fraction(1, 2)
    assert apply_bp(-amount, rate) == -apply_bp(amount, rate)


@st.composite
def tier_ladders(draw: st.DrawFn) -> tuple[Tier, ...]:
    thresholds = sorted(
        draw(st.sets(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=5))
    )
    uplifts = sorted(draw(st.lists(rates, min_size=len(thresholds), max_size=len(thresholds))))
    return tuple(
        Tier(f"T{i}", t, u) for i, (t, u) in enumerate(zip(thresholds, uplifts, strict=True))
    )


@given(tiers=tier_ladders(), revenue=st.integers(min_value=-(10**9), max_value=2 * 10**9))
def test_the_tier_is_the_highest_threshold_reached(tiers: tuple[Tier, ...], revenue: int) -> None:
    rules = Rules(base_rates=(BaseRate(800),), tiers=tiers)
    choice = select_tier(rules, Standing(revenue, max(revenue, 0), 0))
    reached = [t for t in tiers if t.threshold_minor <= revenue]
    assert choice.tier == (reached[-1] if reached else None)
    higher = [t for t in tiers if t.threshold_minor > revenue]
    assert choice.next_tier == (higher[0] if higher else None)
    if choice.next_tier is not None:
        gap = choice.amount_to_next(Standing(revenue, max(revenue, 0), 0))
        assert gap == choice.next_tier.threshold_minor - revenue > 0


@given(tiers=tier_ladders(), data=st.data())
def test_exactly_at_a_threshold_is_in_the_tier_one_below_is_not(
    tiers: tuple[Tier, ...], data: st.DataObject
) -> None:
    rules = Rules(base_rates=(BaseRate(800),), tiers=tiers)
    tier = data.draw(st.sampled_from(tiers))
    at = select_tier(rules, Standing(tier.threshold_minor, tier.threshold_minor, 0))
    assert at.tier == tier
    below = select_tier(rules, Standing(tier.threshold_minor - 1, tier.threshold_minor, 0))
    assert below.tier != tier


# (day offset from 1 January, amount, reverse it later?)
sales = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=88),
        st.integers(min_value=1, max_value=3_000_000),
        st.booleans(),
    ),
    min_size=1,
    max_size=8,
)
decisions = st.lists(st.sampled_from(["approve", "pay", "hold", "none"]), min_size=3, max_size=3)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=sales, choices=decisions)
async def test_entries_statements_and_payout_states_reconcile(
    db: Database,
    clock: OffsetClock,
    services: Services,
    plan: list[tuple[int, int, bool]],
    choices: list[str],
) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    clock.freeze(start)
    async with db.transaction() as session:
        tenant = await create_tenant(session, clock, partners=1)
    await es.seed_products(db, clock, tenant)
    await es.make_program(db, clock, tenant, es.worked_rules(start))
    await tax_form(db, clock, tenant)
    for day, amount, reverse in sorted(plan):
        clock.freeze(start + timedelta(days=day, hours=9))
        sold = await es.sale(db, clock, tenant, amount)
        await dispatch(services)
        if reverse:
            clock.advance(timedelta(hours=1))
            await reverse_sale(db, clock, tenant, sold, amount=max(amount // 3, 1))
            await dispatch(services)
    clock.freeze(datetime(2026, 4, 2, tzinfo=UTC))
    fin = tenant.principal(Role.FINANCE)

    async def decide(action: Callable[[AsyncSession], Awaitable[object]]) -> None:
        await tx(db, action)
        # Dispatch the change notices the decision recorded, as the app does after commit.
        await dispatch(services)

    month = start
    for choice in choices:  # January, February, March
        made: list[PayoutStatement] = []

        async def make(
            s: AsyncSession, m: datetime = month, out: list[PayoutStatement] = made
        ) -> None:
            out.extend(
                await payouts.generate_statements(
                    s, fin, clock, month=m, signals=services.claim_signals
                )
            )

        await decide(make)
        for statement in made:
            i = statement.id
            if statement.status is PayoutStatus.HELD and choice in ("approve", "pay"):
                continue
            if choice in ("approve", "pay"):
                await decide(lambda s, i=i: payouts.approve(s, fin, clock, statement_id=i))
            if choice == "pay":
                await decide(lambda s, i=i: payouts.mark_paid(s, fin, clock, statement_id=i))
            if choice == "hold":
                await decide(lambda s, i=i: payouts.hold(s, fin, clock, statement_id=i, note="x"))
        month = payouts.next_month(month)
    partner = tenant.partners[0].id
    async with db.session() as session:
        entries_total = await session.scalar(
            select(func.coalesce(func.sum(EarningEntry.amount_minor), 0)).where(
                EarningEntry.partner_id == partner
            )
        )
        statements = list(
            await session.exec(select(PayoutStatement).where(PayoutStatement.partner_id == partner))
        )
        by_status = {s: 0 for s in PayoutStatus}
        for statement in statements:
            by_status[statement.status] += statement.total_minor
            in_month = await session.scalar(
                select(func.coalesce(func.sum(EarningEntry.amount_minor), 0)).where(
                    EarningEntry.partner_id == partner,
                    col(EarningEntry.booked_at) >= statement.period_start,
                    col(EarningEntry.booked_at) < statement.period_end,
                )
            )
            assert statement.total_minor == in_month
        assert sum(s.total_minor for s in statements) == entries_total
        summary = await service.summary(
            session, tenant.principal(Role.PARTNER_ADMIN), clock,
            scope=Scope(tenant.vendor.id, partner), start=start,
            end=datetime(2026, 4, 1, tzinfo=UTC), signals=services.claim_signals,
        )  # fmt: skip
    assert summary.earned_minor == entries_total
    assert summary.earned_minor == summary.paid_minor + summary.pending_minor + summary.held_minor
    assert summary.paid_minor == by_status[PayoutStatus.PAID]
    assert summary.held_minor == by_status[PayoutStatus.HELD]
    assert (
        summary.pending_minor == by_status[PayoutStatus.PENDING] + by_status[PayoutStatus.APPROVED]
    )
