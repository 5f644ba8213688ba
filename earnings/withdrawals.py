"""Taking back what withdrawn rate overlays paid (an incentive rule version rolled back
with ``reverseEarnings``).

The ledger is append-only, so nothing is edited: for every RATE_OVERLAY entry of the
overlays, what is still outstanding of it (its amount less what already took it back: the
clawback of a refunded sale, an earlier withdrawal) is balanced by one new entry, booked
now, in integer minor units — the whole outstanding amount, so no new rounding (the one
rounding rule ran when the entry was credited, and a partial refund's clawback already
rounded its share):

- **in this month's statement** — the entry was booked this month, so no statement has
  it yet and the reversal lands in the same statement: a RATE_OVERLAY entry of the
  opposite amount naming the same overlay, so the overlay's line nets to what it really
  paid and that statement never pays it ("reversed before it was paid out");
- **in an earlier month's statement** — its month has ended, so that month's statement
  (made or still to be made, and whether PENDING, APPROVED, HELD or PAID) pays the
  original, and the entry booked now lands in this month's statement: a CLAWBACK entry (a
  positive overlay), or, for a negative overlay that withheld money, a RATE_OVERLAY entry
  paying it back; neither names the overlay, so, as with other clawbacks, a rule's budget
  still counts what is paid out. The partner reads "taken from your next payout" when that
  statement is PAID, and "taken back in your <this month> statement" otherwise (it is
  not paid yet, but it will pay the original).

Each entry says why in the partner's words (never the rule's name), and the summary's
explanations list the withdrawals apart from refunded sales' clawbacks."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from earnings import booking
from earnings.ledger import record_change
from earnings.models import (
    CreditedSource,
    EarningEntry,
    EntryKind,
    PayoutStatement,
    PayoutStatus,
    Program,
    SourceType,
)
from earnings.payouts import month_start
from earnings.rounding import format_bp
from infra.clock import Clock
from infra.ids import new_id
from infra.money import Money

MARK = "withdrawn_overlay_id"  # the inputs key of every entry written here


@dataclass
class Withdrawal:
    reversed_minor: int = 0  # booked this month, reversed (negative: taken back)
    # In an earlier month's statement (paid or not): clawed back or paid back in this
    # month's (signed like the entries)
    clawed_back_minor: int = 0
    entries: list[EarningEntry] = field(default_factory=list)


def _day(at: datetime) -> str:
    return f"{at.day} {at:%B %Y}"


async def withdraw_overlay_earnings(
    session: AsyncSession,
    clock: Clock,
    *,
    overlay_ids: Collection[uuid.UUID],
    why: str,
    since: Mapping[uuid.UUID, datetime] | None = None,
) -> Withdrawal:
    """Balance what these overlays' entries paid and is still outstanding (see the module
    docstring); ``why`` ends the partner's sentence ("the promotion was withdrawn"). For an
    overlay in ``since`` (one only extended), only the entries of sales effective from
    then on (what the extension paid).
    Idempotent: a second call finds nothing outstanding."""
    out = Withdrawal()
    if not overlay_ids:
        return out
    ids = list(overlay_ids)
    paid_by_overlay = [
        entry
        for entry in await session.exec(
            select(EarningEntry)
            .where(
                col(EarningEntry.overlay_id).in_(ids),
                EarningEntry.kind == EntryKind.RATE_OVERLAY,
            )
            .order_by(col(EarningEntry.booked_at), col(EarningEntry.id))
        )
        if MARK not in entry.inputs
        and entry.amount_minor != 0
        and (
            since is None
            or entry.overlay_id is None
            or entry.overlay_id not in since
            or entry.effective_at >= since[entry.overlay_id]
        )
    ]
    if not paid_by_overlay:
        return out
    by_id = {str(e.id): e for e in paid_by_overlay}
    partners = sorted({e.partner_id for e in paid_by_overlay})
    # What took them back already: refunded sales' clawbacks and earlier withdrawals.
    taken: dict[str, int] = {}
    for entry in await session.exec(
        select(EarningEntry).where(
            col(EarningEntry.partner_id).in_(partners),
            or_(
                col(EarningEntry.line_key).like("RATE_OVERLAY:%"),
                col(EarningEntry.line_key).like("withdrawn:%"),
            ),
        )
    ):
        reverses = str(entry.inputs.get("reverses_entry_id") or "")
        if reverses in by_id:
            taken[reverses] = taken.get(reverses, 0) + entry.amount_minor
    programs = {
        p.id: p
        for p in await session.exec(
            select(Program).where(
                col(Program.id).in_({e.program_id for e in paid_by_overlay if e.program_id})
            )
        )
    }
    statements = {
        (s.partner_id, s.currency, s.period_start): s
        for s in await session.exec(
            select(PayoutStatement).where(col(PayoutStatement.partner_id).in_(partners))
        )
    }
    now = clock.now()
    # Booked now, or in the first month still without statements (earnings.booking): what
    # "this month" means below.
    closed: dict[uuid.UUID, datetime | None] = {}
    sources: dict[tuple[uuid.UUID, str], CreditedSource] = {}
    for entry in paid_by_overlay:
        outstanding = entry.amount_minor + taken.get(str(entry.id), 0)
        if outstanding == 0 or (outstanding > 0) != (entry.amount_minor > 0):
            continue
        key = (entry.partner_id, entry.currency)
        if key not in sources:
            sources[key] = CreditedSource(
                vendor_id=entry.vendor_id, partner_id=entry.partner_id,
                source_event_id=new_id(), source_type=SourceType.ADJUSTMENT,
                currency=entry.currency, note=f"Incentive overlays withdrawn: {why}"[:500],
                effective_at=now, credited_at=now,
            )  # fmt: skip
            session.add(sources[key])
            await session.flush()
        source = sources[key]
        booked = await booking.instant(session, closed, entry.vendor_id, now)
        entry_month = month_start(entry.booked_at)
        statement = statements.get((entry.partner_id, entry.currency, entry_month))
        paid = statement is not None and statement.status is PayoutStatus.PAID
        # Booked this month: no statement has the entry yet; the reversal nets it out in
        # the same one. Otherwise that month's statement pays it and this month's takes
        # it back, whatever that statement's status.
        later = entry_month != month_start(booked)
        program = programs.get(entry.program_id) if entry.program_id else None
        name = program.name if program else "Your program"
        delta = int(entry.inputs.get("delta_bp") or 0)
        what = (
            f"the incentive overlay {'+' if delta > 0 else ''}{format_bp(delta)} credited on "
            f"{_day(entry.booked_at)} ({Money(outstanding, entry.currency).format()})"
        )
        inputs = {
            MARK: str(entry.overlay_id), "reverses_entry_id": str(entry.id),
            "original_kind": EntryKind.RATE_OVERLAY.value, "original_amount_minor":
            entry.amount_minor, "outstanding_minor": outstanding, "paid": paid,
            "later_statement": later,
            "statement_id": str(statement.id) if statement else None, "reason": why,
        }  # fmt: skip
        if not later:
            kind, overlay_id = EntryKind.RATE_OVERLAY, entry.overlay_id
            rule = f"{name}: {what} reversed before it was paid out: {why}"
            out.reversed_minor -= outstanding
        else:
            kind = EntryKind.CLAWBACK if outstanding > 0 else EntryKind.RATE_OVERLAY
            overlay_id = None
            month = f"{entry_month:%B %Y}"
            if paid:
                rule = (
                    f"{name}: clawback of {what}, paid in the {month} statement: {why}; taken "
                    "from your next payout"
                    if outstanding > 0
                    else f"{name}: {what}, withheld in the {month} statement, paid back: {why}"
                )
            else:
                this = f"{booked:%B %Y}"
                rule = (
                    f"{name}: clawback of {what}, in the {month} statement: {why}; taken back "
                    f"in your {this} statement"
                    if outstanding > 0
                    else f"{name}: {what}, withheld in the {month} statement: {why}; paid back "
                    f"in your {this} statement"
                )
            out.clawed_back_minor -= outstanding
        withdrawn = EarningEntry(
            vendor_id=entry.vendor_id, partner_id=entry.partner_id,
            rep_user_id=entry.rep_user_id, source_id=source.id,
            source_event_id=source.source_event_id, program_id=entry.program_id,
            program_version_id=entry.program_version_id, kind=kind,
            line_key=f"withdrawn:{entry.id}", amount_minor=-outstanding,
            currency=entry.currency, rule=rule[:500], inputs=inputs, effective_at=now,
            booked_at=booked, overlay_id=overlay_id,
        )  # fmt: skip
        session.add(withdrawn)
        out.entries.append(withdrawn)
    await session.flush()
    for partner_id in sorted({partner for partner, _ in sources}):
        await record_change(
            session, clock, vendor_id=out.entries[0].vendor_id, partner_id=partner_id,
            entries=[e for e in out.entries if e.partner_id == partner_id],
        )  # fmt: skip
    return out
