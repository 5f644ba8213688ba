"""The handlers' incremental way (today's snapshot advanced over its stored basis) equals a
rebuild from the source tables, over random sequences of sales, reversals, claims, risk
flags and deals, with the daily job run or not before each, and events handled on time or
late (after the clock moved, maybe past midnight)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import col, select

from deal_registration.events import CLAIM_STATE_CHANGED, DEAL_STATUS_CHANGED
from deal_registration.registrations.models import (
    DealAction,
    DealRegistration,
    DealStatus,
    DealTransition,
)
from deal_registration.sales.models import (
    ClaimState,
    DecisionAction,
    RiskFlag,
    RiskKind,
    SaleClaim,
    SaleClaimDecision,
)
from earnings.events import EARNINGS_CHANGED
from earnings.models import CreditedSource, EarningEntry, EntryKind, SourceType
from infra.clock import FrozenClock
from infra.db import Database, begin_write
from infra.outbox import OutboxEvent
from partners.roles import Role
from signals import handlers, maintenance
from signals.models import SignalFact, SignalRepFact, SignalRepSnapshot, SignalSnapshot
from tests.factories import Tenant, create_tenant

START = datetime(2026, 3, 1, 9, tzinfo=UTC)

KINDS = (
    "sale", "reversal", "earning", "claim_submitted", "claim_approved", "claim_rejected",
    "approval",
    "flag", "deal_submitted", "deal_approved", "deal_won", "deal_lost", "deal_withdrawn",
)  # fmt: skip

steps = st.lists(
    st.tuples(
        st.sampled_from(KINDS),
        st.integers(0, 1),  # partner
        st.integers(1, 90_000),  # amount
        st.integers(0, 30 * 60),  # minutes the clock moves first
        st.booleans(),  # the daily job runs first
        st.booleans(),  # the event is handled late (at the next step)
        st.booleans(),  # the partner's admin is the rep (else its rep user)
    ),
    min_size=1,
    max_size=25,
)


@dataclass
class World:
    tenant: Tenant
    clock: FrozenClock
    open_deals: dict[int, list[tuple[uuid.UUID, DealStatus]]] = field(default_factory=dict)


async def stored(db: Database, vendor_id: uuid.UUID) -> tuple[list[Any], ...]:
    async with db.session() as session:
        facts = [
            f.model_dump()
            for f in await session.exec(
                select(SignalFact)
                .where(SignalFact.vendor_id == vendor_id)
                .order_by(col(SignalFact.partner_id), col(SignalFact.day))
            )
        ]
        snapshots = [
            (s.partner_id, s.day, s.currency, s.values, s.basis)
            for s in await session.exec(
                select(SignalSnapshot)
                .where(SignalSnapshot.vendor_id == vendor_id)
                .order_by(col(SignalSnapshot.partner_id), col(SignalSnapshot.day))
            )
        ]
        rep_facts = [
            f.model_dump()
            for f in await session.exec(
                select(SignalRepFact)
                .where(SignalRepFact.vendor_id == vendor_id)
                .order_by(
                    col(SignalRepFact.partner_id), col(SignalRepFact.rep_user_id),
                    col(SignalRepFact.day),
                )
            )
        ]  # fmt: skip
        rep_snapshots = [
            (s.partner_id, s.rep_user_id, s.day, s.currency, s.values, s.basis)
            for s in await session.exec(
                select(SignalRepSnapshot)
                .where(SignalRepSnapshot.vendor_id == vendor_id)
                .order_by(
                    col(SignalRepSnapshot.partner_id), col(SignalRepSnapshot.rep_user_id),
                    col(SignalRepSnapshot.day),
                )
            )
        ]  # fmt: skip
    return facts, snapshots, rep_facts, rep_snapshots


async def happen(
    db: Database, world: World, kind: str, index: int, amount: int, admin: bool = False
) -> list[OutboxEvent]:
    """Write the source rows of ``kind`` as its service would, and the events it records
    (naming as its rep the partner's admin or its rep user). An ``approval`` is a claim
    approved and credited: the claim's notice (its credit follows) and the credit's
    EarningsChanged (with when the claim was approved)."""
    if kind == "approval":
        notice = await happen(db, world, "claim_approved", index, amount, admin)
        credit = await happen(db, world, "sale", index, amount, admin)
        notice[0].payload["credit_follows"] = True
        credit[0].payload["source_at"] = world.clock.now().isoformat()
        return notice + credit
    tenant, now = world.tenant, world.clock.now()
    partner = tenant.partners[index]
    rep = tenant.user(Role.PARTNER_ADMIN if admin else Role.PARTNER_REP, index).id
    vendor_id = tenant.vendor.id
    async with db.transaction() as s:
        if kind in ("sale", "reversal", "earning"):
            sign = -1 if kind == "reversal" else 1
            source = CreditedSource(
                vendor_id=vendor_id, partner_id=partner.id, rep_user_id=rep,
                source_event_id=uuid.uuid4(),
                source_type=(
                    SourceType.ADJUSTMENT if kind == "earning"
                    else SourceType.SALE_REVERSED if sign < 0 else SourceType.SALE_APPROVED
                ),
                currency="USD", revenue_minor=0 if kind == "earning" else sign * amount,
                margin_minor=0 if kind == "earning" else sign * (amount // 3),
                effective_at=now, credited_at=now,
            )  # fmt: skip
            s.add(source)
            await s.flush()
            s.add(
                EarningEntry(
                    vendor_id=vendor_id,
                    partner_id=partner.id,
                    rep_user_id=rep,
                    source_id=source.id,
                    source_event_id=source.source_event_id,
                    kind=EntryKind.CLAWBACK if sign < 0 else EntryKind.COMMISSION,
                    amount_minor=sign * (amount // 10),
                    currency="USD",
                    rule="test",
                    effective_at=now,
                    booked_at=now,
                )  # fmt: skip
            )
            event_type = EARNINGS_CHANGED
        elif kind.startswith("claim") or kind == "flag":
            claim = SaleClaim(
                vendor_id=vendor_id, partner_id=partner.id, rep_user_id=rep,
                customer_name="C", invoice_number=uuid.uuid4().hex[:10], sale_date=now.date(),
                amount_minor=amount, currency="USD", state=ClaimState.UNDER_REVIEW,
                created_at=now, updated_at=now,
            )  # fmt: skip
            s.add(claim)
            await s.flush()
            action = {
                "claim_submitted": DecisionAction.SUBMITTED,
                "claim_approved": DecisionAction.APPROVED,
                "claim_rejected": DecisionAction.REJECTED,
                "flag": DecisionAction.SUBMITTED,
            }[kind]
            s.add(
                SaleClaimDecision(
                    claim_id=claim.id,
                    partner_id=claim.partner_id,
                    action=action,
                    to_state=ClaimState.UNDER_REVIEW,
                    note="",
                    decided_at=now,
                )  # fmt: skip
            )
            if kind == "flag":
                s.add(
                    RiskFlag(
                        vendor_id=vendor_id,
                        claim_id=claim.id,
                        kind=RiskKind.CLAIM_BURST,
                        created_at=now,
                    )
                )
            event_type = CLAIM_STATE_CHANGED
        else:
            deals = world.open_deals.setdefault(index, [])
            target = {
                "deal_submitted": DealStatus.SUBMITTED, "deal_approved": DealStatus.APPROVED,
                "deal_won": DealStatus.WON, "deal_lost": DealStatus.LOST,
                "deal_withdrawn": DealStatus.WITHDRAWN,
            }[kind]  # fmt: skip
            if kind == "deal_submitted" or not deals:
                registration = DealRegistration(
                    vendor_id=vendor_id, partner_id=partner.id, registered_by_id=rep,
                    status=DealStatus.SUBMITTED, customer_name="C", customer_name_key="c",
                    customer_domain="c.example", customer_country="DE",
                    estimated_value_minor=amount, currency="USD",
                    expected_close_date=now.date() + timedelta(days=60), submitted_at=now,
                    created_at=now, updated_at=now,
                )  # fmt: skip
                s.add(registration)
                await s.flush()
                s.add(
                    DealTransition(
                        vendor_id=vendor_id,
                        registration_id=registration.id,
                        action=DealAction.SUBMIT,
                        from_status=None,
                        to_status=DealStatus.SUBMITTED,
                        at=now,
                    )  # fmt: skip
                )
                deals.append((registration.id, DealStatus.SUBMITTED))
            if kind != "deal_submitted":
                registration_id, before = deals.pop(0)
                s.add(
                    DealTransition(
                        vendor_id=vendor_id,
                        registration_id=registration_id,
                        action=DealAction.APPROVE,
                        from_status=before,
                        to_status=target,
                        at=now,
                    )  # fmt: skip
                )
                if target is DealStatus.APPROVED:
                    deals.append((registration_id, target))
            event_type = DEAL_STATUS_CHANGED
    return [
        OutboxEvent(
            vendor_id=vendor_id, type=event_type, aggregate_id=uuid.uuid4(),
            payload={"partner_id": str(partner.id)}, occurred_at=now, recorded_at=now,
        )
    ]  # fmt: skip


def _diff(rebuilt: list[Any], kept: list[Any]) -> list[Any]:
    """What differs, for the failure message: row by row (or the lengths)."""
    if len(rebuilt) != len(kept):
        return [len(rebuilt), len(kept)]
    out = []
    for a, b in zip(rebuilt, kept, strict=True):
        if isinstance(a, dict) and isinstance(b, dict):
            out += [(k, a.get(k), b.get(k)) for k in a if a.get(k) != b.get(k)]
        elif a != b:
            out.append((a, b))
    return out


async def take_due(db: Database, world: World) -> None:
    async with db.transaction() as s:
        await begin_write(s)
        await maintenance.take_due(s, world.clock, world.tenant.vendor.id)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=steps)
async def test_advancing_snapshots_equals_a_rebuild(
    db: Database, steps: list[tuple[str, int, int, int, bool, bool, bool]]
) -> None:
    clock = FrozenClock(START)
    async with db.transaction() as s:
        tenant = await create_tenant(s, clock)
    world = World(tenant, clock)
    await take_due(db, world)
    late: list[OutboxEvent] = []
    days: set[date] = set()
    for kind, index, amount, minutes, daily_first, handle_late, admin in steps:
        clock.set(clock.now() + timedelta(minutes=minutes))
        days.add(clock.now().date())
        if late:
            await handlers.apply(db, clock, late)
            late = []
        if daily_first:
            await take_due(db, world)
        events = await happen(db, world, kind, index, amount, admin)
        if handle_late:
            late += events
        else:
            await handlers.apply(db, clock, events)
    if late:
        await handlers.apply(db, clock, late)
    await take_due(db, world)
    before = await stored(db, tenant.vendor.id)
    async with db.transaction() as s:
        await begin_write(s)
        await maintenance.rebuild(s, clock, tenant.vendor.id)
    after = await stored(db, tenant.vendor.id)
    for name, rebuilt, kept in zip(
        ("facts", "snapshots", "rep facts", "rep snapshots"), after, before, strict=True
    ):
        assert rebuilt == kept, (name, _diff(rebuilt, kept))
    # Per rep too (and not vacuously: a sale, a submission or a deal names its rep).
    if any(kind not in ("earning", "claim_approved", "claim_rejected") for kind, *_ in steps):
        assert before[2]
        assert before[3]


async def test_a_rep_snapshot_without_a_basis_is_advanced_from_its_windows(db: Database) -> None:
    """A rep snapshot of today stored before bases were kept (no basis) is moved by reading
    the rep's windows, and keeps a basis from then on: as a rebuild would store it."""
    clock = FrozenClock(START)
    async with db.transaction() as s:
        tenant = await create_tenant(s, clock)
    world = World(tenant, clock)
    await take_due(db, world)
    for day in range(3):  # history before today, and a snapshot of today
        clock.set(START + timedelta(days=day))
        await take_due(db, world)
        await handlers.apply(db, clock, await happen(db, world, "sale", 0, 1_000 + day))
        await handlers.apply(db, clock, await happen(db, world, "deal_submitted", 0, 500))
    async with db.transaction() as s:
        stripped = await s.exec(
            select(SignalRepSnapshot).where(
                SignalRepSnapshot.vendor_id == tenant.vendor.id,
                SignalRepSnapshot.day == clock.now().date(),
            )
        )
        for snapshot in stripped:
            snapshot.basis = None
            s.add(snapshot)
    clock.set(clock.now() + timedelta(minutes=5))
    await handlers.apply(db, clock, await happen(db, world, "sale", 0, 7_000))
    await handlers.apply(db, clock, await happen(db, world, "deal_won", 0, 0))
    before = await stored(db, tenant.vendor.id)
    assert before[3]
    assert all(basis is not None for *_, basis in before[3])
    async with db.transaction() as s:
        await begin_write(s)
        await maintenance.rebuild(s, clock, tenant.vendor.id)
    after = await stored(db, tenant.vendor.id)
    for rebuilt, kept_ in zip(after[2:], before[2:], strict=True):
        assert rebuilt == kept_, _diff(rebuilt, kept_)


async def test_a_partner_whose_day_did_not_move_keeps_its_reps_facts(db: Database) -> None:
    """A run naming two partners, one of whose facts of today do not move (its event handled
    again): its reps' facts and snapshots of today stay as they were (they were emptied)."""
    clock = FrozenClock(START)
    async with db.transaction() as s:
        tenant = await create_tenant(s, clock)
    world = World(tenant, clock)
    await take_due(db, world)
    first = await happen(db, world, "sale", 0, 4_000)
    await handlers.apply(db, clock, first)
    kept = await stored(db, tenant.vendor.id)
    assert kept[2]
    assert kept[3]
    clock.set(clock.now() + timedelta(minutes=1))
    await handlers.apply(db, clock, first + await happen(db, world, "sale", 1, 3_000))
    before = await stored(db, tenant.vendor.id)
    assert [f for f in before[2] if f["partner_id"] == tenant.partners[0].id] == kept[2]
    async with db.transaction() as s:
        await begin_write(s)
        await maintenance.rebuild(s, clock, tenant.vendor.id)
    after = await stored(db, tenant.vendor.id)
    for rebuilt, kept_ in zip(after[2:], before[2:], strict=True):
        assert rebuilt == kept_, _diff(rebuilt, kept_)


async def test_a_run_moves_each_partner_by_its_own_kinds_of_source(db: Database) -> None:
    """A run naming a partner advanced for a claim and another refreshed for a sale (it has
    no snapshot of today): the day's credits are read for both, in the advance's one read,
    but the first partner's are not taken: its facts move by its claims alone (its sale's
    own event, handled later, moves them by the credits), as a rebuild has them at the
    end."""
    clock = FrozenClock(START)
    async with db.transaction() as s:
        tenant = await create_tenant(s, clock)
    world = World(tenant, clock)
    await take_due(db, world)
    ours, theirs = tenant.partners[0].id, tenant.partners[1].id
    today = clock.now().date()
    # A sale naming the partner's admin as its rep, its event not handled yet.
    held_back = await happen(db, world, "sale", 0, 4_000, admin=True)
    admin = tenant.user(Role.PARTNER_ADMIN, 0).id
    async with db.transaction() as s:
        dropped = await s.exec(
            select(SignalSnapshot).where(
                SignalSnapshot.partner_id == theirs, SignalSnapshot.day == today
            )
        )
        for snapshot in dropped:
            await s.delete(snapshot)
    clock.set(clock.now() + timedelta(minutes=1))
    claim = await happen(db, world, "claim_submitted", 0, 1_000)
    sale = await happen(db, world, "sale", 1, 3_000)
    await handlers.apply(db, clock, claim + sale)

    kept = await stored(db, tenant.vendor.id)
    facts = {(f["partner_id"], f["day"]): f for f in kept[0]}
    assert (facts[(ours, today)]["claims_submitted"], facts[(ours, today)]["sales"]) == (1, 0)
    assert facts[(theirs, today)]["sales"] == 1
    # Nor is the admin a rep of the day yet (its only source row is the sale).
    assert not [f for f in kept[2] if f["rep_user_id"] == admin]
    assert not [s for s in kept[3] if s[1] == admin]
    await handlers.apply(db, clock, held_back)
    before = await stored(db, tenant.vendor.id)
    assert {(f["partner_id"], f["day"]): f for f in before[0]}[(ours, today)]["sales"] == 1
    async with db.transaction() as s:
        await begin_write(s)
        await maintenance.rebuild(s, clock, tenant.vendor.id)
    after = await stored(db, tenant.vendor.id)
    for rebuilt, kept in zip(after, before, strict=True):
        assert rebuilt == kept, _diff(rebuilt, kept)
