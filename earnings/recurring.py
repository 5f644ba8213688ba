"""Recurring commissions (docs/recurring.md#recurring-commissions): crediting the events
subscriptions records (renewals, expansions, cancellations) under the programs' recurring
rules, and the clock-driven retention bonus.

Idempotent as the rest of the ledger: each event is one ``earning_source`` row, unique on
its event id; a retention check is a source too, its id derived from the subscription and
the program (``retention_event_id``), so a second check credits nothing."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from earnings import programs
from earnings.ledger import (
    Run,
    _Entries,
    _entries,
    _in_force,
    _insert_source,
    _named,
    record_change,
)
from earnings.models import (
    CreditedSource,
    EarningEntry,
    EntryKind,
    Program,
    ProgramVersion,
    SourceType,
)
from earnings.programs import Recurring, Rules
from earnings.rounding import apply_bp, format_bp
from infra import passes
from infra.clock import Clock
from infra.db import Database, begin_write
from infra.money import Money
from infra.outbox import OutboxEvent
from subscriptions.changes import add_months
from subscriptions.events import (
    SUBSCRIPTION_CANCELLED,
    SUBSCRIPTION_EXPANDED,
    SUBSCRIPTION_RENEWED,
    SubscriptionChanged,
)
from subscriptions.models import (
    ChangeKind,
    CustomerAccount,
    Subscription,
    SubscriptionChange,
)

log = logging.getLogger(__name__)

RECURRING_TYPES = (SUBSCRIPTION_RENEWED, SUBSCRIPTION_EXPANDED, SUBSCRIPTION_CANCELLED)
_SOURCE = {
    SUBSCRIPTION_RENEWED: SourceType.SUBSCRIPTION_RENEWED,
    SUBSCRIPTION_EXPANDED: SourceType.SUBSCRIPTION_EXPANDED,
    SUBSCRIPTION_CANCELLED: SourceType.SUBSCRIPTION_CANCELLED,
}
RECURRING_KINDS = (EntryKind.RENEWAL_COMMISSION, EntryKind.ESCALATOR, EntryKind.EXPANSION_BONUS)
_RETENTION = uuid.UUID("6b1f3c52-6f0e-4d0e-9a55-2f1c1d0b7a10")


def months_between(start: datetime, end: datetime) -> int:
    """Whole months from ``start`` to ``end`` (a term starting 12 months in: 12)."""
    months = (end.year - start.year) * 12 + end.month - start.month
    if add_months(start, months) > end:
        months -= 1
    return months


async def _customer(session: AsyncSession, account_id: uuid.UUID) -> str:
    account = await session.get(CustomerAccount, account_id)
    return account.name if account else "your customer"


async def credit_many(db: Database, clock: Clock, events: list[OutboxEvent]) -> int:
    """Credit a run of subscription events in one transaction; when one of them was
    credited before (a re-run), each on its own. Returns how many entries were written."""
    try:
        async with db.transaction() as session:
            await begin_write(session)
            run, written = Run(), 0
            for event in events:
                written += len(await credit_subscription_event(session, clock, run, event))
            return written
    except IntegrityError:
        written = 0
        for event in events:
            try:
                async with db.transaction() as session:
                    await begin_write(session)
                    entries = await credit_subscription_event(session, clock, Run(), event)
                    written += len(entries)
            except IntegrityError:
                async with db.session() as session:
                    done = await session.exec(
                        select(CreditedSource.id).where(CreditedSource.source_event_id == event.id)
                    )
                    if done.first() is None:
                        raise
        return written


async def credit_subscription_event(
    session: AsyncSession, clock: Clock, run: Run, event: OutboxEvent
) -> list[EarningEntry]:
    change = SubscriptionChanged.parse(event.payload)
    now = clock.now()
    source = await _insert_source(
        session,
        run,
        CreditedSource(
            vendor_id=event.vendor_id, partner_id=change.partner_id,
            rep_user_id=change.rep_user_id, source_event_id=event.id,
            source_type=_SOURCE[event.type], subject_id=change.subscription_id,
            region=change.region, currency=change.currency,
            lines=[{"sku": change.sku, "units": 0, "amount_minor": change.amount_after_minor}],
            effective_at=change.effective_at, credited_at=now,
        ),
    )  # fmt: skip
    out = await _entries(session, run, source, now)
    customer = await _customer(session, change.account_id)
    if event.type == SUBSCRIPTION_CANCELLED:
        await _clawback(session, out, change, customer)
    elif change.source != "BILLING":
        # A term added by a sale or a won deal: the sale's own commission pays it (and the
        # ledger's reversal rule takes that back), so no recurring commission is due.
        pass
    else:
        for program, version, rules in await _in_force(
            session, run, event.vendor_id, change.currency, change.effective_at,
            change.partner_id,
        ):  # fmt: skip
            if rules.recurring is None:
                continue
            if event.type == SUBSCRIPTION_RENEWED:
                _renewal(out, program, version, rules.recurring, change, customer)
            else:
                peak = await _peak_before(session, change)
                _expansion(out, program, version, rules.recurring, change, customer, peak)
    await session.flush()
    await record_change(
        session, clock, vendor_id=event.vendor_id, partner_id=change.partner_id,
        entries=out.written,
    )  # fmt: skip
    return out.written


def _renewal(
    out: _Entries,
    program: Program,
    version: ProgramVersion,
    r: Recurring,
    change: SubscriptionChanged,
    customer: str,
) -> None:
    n = change.renewal_number
    months_in = months_between(change.subscription_started_at, change.term_start)
    rate = r.renewal_rate(n)
    inputs: dict[str, Any] = {
        "subscription_id": str(change.subscription_id), "sku": change.sku,
        "renewal_number": n, "term_months": change.term_months,
        "term_amount_minor": change.amount_after_minor, "rate_bp": rate,
        "schedule_bp": list(r.renewal_schedule_bp), "max_renewals": r.max_renewals,
        "max_months": r.max_months, "months_since_start": months_in,
        "term_start": change.term_start.isoformat(),
    }  # fmt: skip
    if r.max_renewals is not None and n > r.max_renewals:
        return  # past the cap: nothing to pay (the explanation says which cap applies)
    if r.max_months is not None and months_in >= r.max_months:
        return
    amount = Money(change.amount_after_minor, change.currency).format()
    what = (
        f"renewal {n} of {customer}'s {change.sku} subscription "
        f"({amount} for {change.term_months} months)"
    )
    if rate:
        out.add(
            version, EntryKind.RENEWAL_COMMISSION, apply_bp(change.amount_after_minor, rate),
            _named(program, f"{format_bp(rate)} of {what}"), inputs,
            line_key=str(change.subscription_id),
        )  # fmt: skip
    escalator = r.escalator_bp(change.term_months)
    if escalator:
        years = change.term_months // 12
        out.add(
            version, EntryKind.ESCALATOR, apply_bp(change.amount_after_minor, escalator),
            _named(
                program,
                f"Multi-year escalator {format_bp(escalator)} "
                f"({format_bp(r.multi_year_escalator_bp)} for each of {years - 1} years beyond "
                f"the first) of {what}",
            ),
            {**inputs, "escalator_bp": escalator,
             "escalator_per_year_bp": r.multi_year_escalator_bp},
            line_key=str(change.subscription_id),
        )  # fmt: skip


async def _peak_before(session: AsyncSession, change: SubscriptionChanged) -> int:
    """The highest recurring amount the subscription had before this expansion."""
    rows = await session.exec(
        select(SubscriptionChange.amount_after_minor).where(
            SubscriptionChange.subscription_id == change.subscription_id,
            SubscriptionChange.id != change.change_id,
            col(SubscriptionChange.effective_at) <= change.effective_at,
            col(SubscriptionChange.kind).in_(
                [ChangeKind.STARTED, ChangeKind.RENEWED, ChangeKind.EXPANDED]
            ),
        )
    )
    return max([change.amount_before_minor, *(int(v) for v in rows)])


def _expansion(
    out: _Entries,
    program: Program,
    version: ProgramVersion,
    r: Recurring,
    change: SubscriptionChanged,
    customer: str,
    peak: int,
) -> None:
    net = change.amount_after_minor - peak
    if not r.expansion_bonus_bp or net <= 0:
        return
    c = change.currency
    out.add(
        version, EntryKind.EXPANSION_BONUS, apply_bp(net, r.expansion_bonus_bp),
        _named(
            program,
            f"Expansion bonus {format_bp(r.expansion_bonus_bp)} of the net increase "
            f"{Money(net, c).format()} ({customer}'s {change.sku} subscription went from its "
            f"highest amount so far, {Money(peak, c).format()}, to "
            f"{Money(change.amount_after_minor, c).format()})",
        ),
        {
            "subscription_id": str(change.subscription_id), "sku": change.sku,
            "amount_before_minor": change.amount_before_minor,
            "previous_peak_minor": peak, "amount_after_minor": change.amount_after_minor,
            "net_increase_minor": net, "rate_bp": r.expansion_bonus_bp,
            "term_start": change.term_start.isoformat(),
        },
        line_key=str(change.subscription_id),
    )  # fmt: skip


async def _clawback(
    session: AsyncSession, out: _Entries, change: SubscriptionChanged, customer: str
) -> None:
    """Take back what the current term earned (its renewal, escalator and expansions: the
    entries whose ``term_start`` is this term's) when the cancellation falls within the
    clawback window of the program that paid it. A cancellation before the term started
    counts as day 0."""
    days_in = max((change.effective_at - change.term_start).days, 0)
    term = change.term_start.isoformat()
    sources = select(CreditedSource.id).where(
        CreditedSource.subject_id == change.subscription_id,
        col(CreditedSource.source_type).in_(
            [SourceType.SUBSCRIPTION_RENEWED, SourceType.SUBSCRIPTION_EXPANDED]
        ),
    )
    entries = await session.exec(
        select(EarningEntry)
        .where(col(EarningEntry.source_id).in_(sources))
        .where(col(EarningEntry.kind).in_(RECURRING_KINDS))
        .order_by(col(EarningEntry.id))
    )
    rules: dict[uuid.UUID, Rules] = {}
    for entry in list(entries):
        if entry.program_version_id is None or entry.inputs.get("term_start") != term:
            continue
        if entry.program_version_id not in rules:
            version = await session.get(ProgramVersion, entry.program_version_id)
            assert version is not None
            rules[entry.program_version_id] = Rules.from_json(version.rules)
        recurring = rules[entry.program_version_id].recurring
        window = recurring.clawback_days if recurring else 0
        if not window or days_in >= window:
            continue
        what = entry.kind.value.lower().replace("_", " ")
        out.add(
            None, EntryKind.CLAWBACK, -entry.amount_minor,
            f"Clawback of the {what} {Money(entry.amount_minor, entry.currency).format()}: "
            f"{customer} cancelled the {change.sku} subscription {days_in} days into its "
            f"term, within the {window}-day clawback window",
            {
                "reverses_entry_id": str(entry.id), "original_kind": entry.kind.value,
                "subscription_id": str(change.subscription_id), "days_into_term": days_in,
                "clawback_days": window, "reason": "subscription cancelled",
            },
            line_key=f"{entry.kind.value}:{entry.id}", program_id=entry.program_id,
        )  # fmt: skip
        out.written[-1].program_version_id = entry.program_version_id


# ---------------------------------------------------------------------------- retention


def retention_event_id(subscription_id: uuid.UUID, program_id: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(_RETENTION, f"{subscription_id}:{program_id}")


async def credit_retention(db: Database, clock: Clock) -> int:
    """Pay every retention bonus now due: a subscription still live ``retention_months``
    after its start (not cancelled by then, its term reaching that mark), under each
    program in force at the mark that has one. Returns how many bonuses it paid."""
    now = clock.now()
    due: list[tuple[uuid.UUID, uuid.UUID, int]] = []  # (subscription, program, months)
    by_id: dict[uuid.UUID, Program] = {}
    async with db.session() as session:
        for program in await session.exec(select(Program).order_by(col(Program.id))):
            by_id[program.id] = program
            months: set[int] = set()
            for version in await programs.versions_of(session, program.id):
                recurring = Rules.from_json(version.rules).recurring
                if recurring and recurring.retention_months and recurring.retention_bonus_minor:
                    months.add(recurring.retention_months)
            if not months:
                continue
            paid_ids = set(
                await session.exec(
                    select(CreditedSource.source_event_id).where(
                        CreditedSource.vendor_id == program.vendor_id,
                        CreditedSource.source_type == SourceType.RETENTION_CHECK,
                    )
                )
            )
            for m in sorted(months):
                rows = await session.exec(
                    select(
                        Subscription.id, Subscription.starts_at, Subscription.ends_at,
                        Subscription.cancelled_at,
                    ).where(
                        Subscription.vendor_id == program.vendor_id,
                        Subscription.currency == program.currency,
                        col(Subscription.starts_at) <= add_months(now, -m),
                    )
                )  # fmt: skip
                for sub_id, starts_at, ends_at, cancelled_at in rows:
                    mark = add_months(starts_at, m)
                    if ends_at < mark or (cancelled_at is not None and cancelled_at <= mark):
                        continue
                    if retention_event_id(sub_id, program.id) not in paid_ids:
                        due.append((sub_id, program.id, m))

    async def pay(unit: tuple[uuid.UUID, uuid.UUID, int]) -> int:
        sub_id, program_id, m = unit
        async with db.transaction() as session:
            return await _retention_of(session, clock, sub_id, by_id[program_id], m)

    return await passes.each(
        "retention bonus", due, pay, expected=(IntegrityError,),
        key=lambda u: f"subscription {u[0]}, {u[2]} months (vendor {by_id[u[1]].vendor_id})",
    )  # fmt: skip


async def _retention_of(
    session: AsyncSession, clock: Clock, subscription_id: uuid.UUID, program: Program, m: int
) -> int:
    await begin_write(session)
    sub = await session.get(Subscription, subscription_id)
    assert sub is not None
    now, run = clock.now(), Run()
    mark = add_months(sub.starts_at, m)
    in_force = [
        (v, r.recurring)
        for p, v, r in await _in_force(
            session, run, sub.vendor_id, sub.currency, mark, sub.partner_id
        )
        if p.id == program.id and r.recurring and r.recurring.retention_months == m
        and r.recurring.retention_bonus_minor > 0
    ]  # fmt: skip
    if not in_force:
        return 0
    version, recurring = in_force[0]
    source = await _insert_source(
        session, run,
        CreditedSource(
            vendor_id=sub.vendor_id, partner_id=sub.partner_id, rep_user_id=sub.rep_user_id,
            source_event_id=retention_event_id(sub.id, program.id),
            source_type=SourceType.RETENTION_CHECK, subject_id=sub.id, region=sub.region,
            currency=sub.currency, effective_at=mark, credited_at=now,
        ),
    )  # fmt: skip
    out = await _entries(session, run, source, now)
    customer = await _customer(session, sub.account_id)
    bonus = recurring.retention_bonus_minor
    out.add(
        version, EntryKind.RETENTION_BONUS, bonus,
        _named(
            program,
            f"Retention bonus {Money(bonus, sub.currency).format()}: {customer}'s {sub.sku} "
            f"subscription is still active {m} months after it started "
            f"({sub.starts_at:%Y-%m-%d})",
        ),
        {
            "subscription_id": str(sub.id), "sku": sub.sku, "retention_months": m,
            "started_at": sub.starts_at.isoformat(), "mark": mark.isoformat(),
            "bonus_minor": bonus,
        },
        line_key=str(sub.id),
    )  # fmt: skip
    await session.flush()
    await record_change(
        session, clock, vendor_id=sub.vendor_id, partner_id=sub.partner_id,
        entries=out.written,
    )  # fmt: skip
    return 1


async def run_retention_checks(db: Database, clock: Clock, interval: float = 60.0) -> None:
    """Pay retention bonuses as the clock reaches them (beside the dispatcher)."""
    while True:
        try:
            await credit_retention(db, clock)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("retention checks failed; retrying")
        await asyncio.sleep(interval)
