"""The ledger: crediting source events into append-only earning entries.

Crediting is idempotent. The first thing a credit writes is the ``earning_source`` row,
unique on the source event id: a second credit of the same event — a re-run of the outbox
handler, or another process doing it at the same moment — fails on that row (on
PostgreSQL it waits for the first transaction, on SQLite for the write lock) and writes
nothing. Entries are additionally unique on (source event, program, kind, line).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from catalogue.models import Product
from catalogue.repository import products_by_sku
from deal_registration.events import (
    DEAL_WON,
    SALE_APPROVED,
    SALE_REVERSED,
    DealWon,
    Line,
    SaleApproved,
    SaleReversed,
)
from earnings import booking, programs, tier_changes
from earnings.claims import ClaimSignals
from earnings.errors import EarningsErrorCode, currency_error
from earnings.events import EarningsChanged, EntryCreated
from earnings.models import (
    CreditedSource,
    EarningEntry,
    EntryKind,
    Program,
    ProgramKind,
    ProgramVersion,
    SourceType,
)
from earnings.overlays import MAX_OVERLAY_BP, overlays_at, paid_deltas
from earnings.policy import EARNINGS, EarningsOp
from earnings.programs import Rules, Standing, TierChoice
from earnings.repository import readable_entries
from earnings.rounding import apply_bp, divide_rounded, format_bp
from infra import idempotency
from infra.clock import Clock
from infra.db import Database, begin_write
from infra.errors import DomainError, DomainErrors
from infra.ids import new_id
from infra.money import Money
from infra.outbox import OutboxEvent, record_event
from infra.text import free_text_problem
from partners.audit_log import AuditEntity, log_change
from partners.groups import groups_of
from partners.models import Partner
from partners.repository import get_readable_partner
from partners.roles import Principal

log = logging.getLogger(__name__)

CREDITED_TYPES = (SALE_APPROVED, SALE_REVERSED, DEAL_WON)


async def credit(
    db: Database, clock: Clock, event: OutboxEvent, *, signals: ClaimSignals
) -> list[EarningEntry]:
    """Credit one committed source event in a transaction of its own. Returns the entries
    written: none when the event was credited before."""
    try:
        async with db.transaction() as session:
            return await credit_in_session(session, clock, event, signals=signals)
    except IntegrityError:
        async with db.session() as session:
            done = await session.exec(
                select(CreditedSource.id).where(CreditedSource.source_event_id == event.id)
            )
            if done.first() is None:
                raise
        log.info("event %s was already credited", event.id)
        return []


async def credit_many(
    db: Database, clock: Clock, events: list[OutboxEvent], *, signals: ClaimSignals
) -> int:
    """Credit a run of committed events, in order, in one transaction (the dispatcher's
    batches: a transaction per event cost more than the crediting). If any of them was
    credited before (a re-run after a crash, or another process dispatching the same run),
    nothing of this transaction stays and each is credited on its own, which skips those.
    Returns how many entries were written."""
    try:
        async with db.transaction() as session:
            run, written = Run(), 0
            for event in events:
                entries = await credit_in_session(session, clock, event, run, signals=signals)
                written += len(entries)
            return written
    except IntegrityError:
        return sum([len(await credit(db, clock, event, signals=signals)) for event in events])


@dataclass
class Run:
    """What one crediting transaction reads once for all its events: the versions of the
    programs (crediting never changes them), their parsed rules, and the partners it has
    locked (a lock lasts until the commit). Only for transactions that credit and nothing
    else: a session that also edits programs passes none."""

    # (vendor, currency) -> each program and its versions
    versions: dict[tuple[uuid.UUID, str], list[tuple[Program, list[ProgramVersion]]]] = field(
        default_factory=dict
    )
    rules: dict[uuid.UUID, Rules] = field(default_factory=dict)  # by version id
    locked: set[uuid.UUID] = field(default_factory=set)
    # vendor -> the end of its last month with statements (earnings.booking)
    closed: dict[uuid.UUID, datetime | None] = field(default_factory=dict)


async def _in_force(
    session: AsyncSession,
    run: Run,
    vendor_id: uuid.UUID,
    currency: str,
    at: datetime,
    partner_id: uuid.UUID,
) -> list[tuple[Program, ProgramVersion, Rules]]:
    """The versions in force at ``at`` of the vendor's programs in ``currency`` that applied
    to the partner then (its groups at ``at``): at most one BASE program (the oldest, should
    group moves since its creation have made two apply) and any BONUS programs."""
    key = (vendor_id, currency)
    if key not in run.versions:
        found = await programs.vendor_programs(session, vendor_id, currency)
        found.sort(key=lambda p: (p.created_at, p.id))
        run.versions[key] = [(p, await programs.versions_of(session, p.id)) for p in found]
    groups: set[uuid.UUID] | None = None
    in_force = []
    base_taken = False
    for program, versions in run.versions[key]:
        version = programs.version_in_force(versions, at)
        if version is None:
            continue
        if program.target_group_ids:
            if groups is None:
                groups = await groups_of(session, vendor_id, partner_id, at)
            if not programs.applies_to(program, groups):
                continue
        if program.kind is ProgramKind.BASE:
            if base_taken:
                continue
            base_taken = True
        if version.id not in run.rules:
            run.rules[version.id] = Rules.from_json(version.rules)
        in_force.append((program, version, run.rules[version.id]))
    return in_force


def _named(program: Program, rule: str) -> str:
    """An entry's rule text names its program (and says a bonus is on top)."""
    if program.kind is ProgramKind.BONUS:
        return f"{program.name} (bonus program, paid on top of your base program): {rule}"
    return f"{program.name}: {rule}"


async def credit_in_session(
    session: AsyncSession,
    clock: Clock,
    event: OutboxEvent,
    run: Run | None = None,
    *,
    signals: ClaimSignals,
) -> list[EarningEntry]:
    """Credit one event in the caller's transaction; ``run`` is shared by the events of one
    crediting transaction (a fresh one when not given)."""
    await begin_write(session)
    run = run or Run()
    if event.type == SALE_APPROVED:
        sale = SaleApproved.parse(event.payload)
        entries = await _credit_sale(session, clock, run, event, sale, signals)
    elif event.type == SALE_REVERSED:
        reversal = SaleReversed.parse(event.payload)
        entries = await _credit_reversal(session, clock, run, event, reversal, signals)
    elif event.type == DEAL_WON:
        entries = await _credit_deal(session, clock, run, event, DealWon.parse(event.payload))
    else:
        raise ValueError(f"earnings does not credit {event.type} events")
    return entries


async def record_change(
    session: AsyncSession,
    clock: Clock,
    *,
    vendor_id: uuid.UUID,
    partner_id: uuid.UUID,
    entries: Sequence[EarningEntry] = (),
    source_at: datetime | None = None,
) -> None:
    """Tell subscribers (after commit, via the outbox) that a partner's earnings changed,
    with the ledger entries the change wrote (and, for a sale claim's credit, when the
    claim was approved or reversed: ``EarningsChanged.source_at``)."""
    changed = EarningsChanged(
        partner_id=partner_id, entries=[_created(e) for e in entries], source_at=source_at
    )
    await record_event(
        session,
        clock,
        vendor_id=vendor_id,
        type=changed.type,
        aggregate_id=partner_id,
        payload=changed.to_payload(),
    )


def _created(entry: EarningEntry) -> EntryCreated:
    return EntryCreated(
        entry_id=entry.id, kind=entry.kind.value, amount_minor=entry.amount_minor,
        currency=entry.currency, explanation=entry.rule, program_id=entry.program_id,
        rep_user_id=entry.rep_user_id, source_event_id=entry.source_event_id,
        effective_at=entry.effective_at, booked_at=entry.booked_at,
    )  # fmt: skip


# ---------------------------------------------------------------------------- standing


async def standing_at(
    session: AsyncSession,
    *,
    vendor_id: uuid.UUID,
    partner_id: uuid.UUID,
    currency: str,
    at: datetime,
    window_days: int,
    signals: ClaimSignals,
) -> Standing:
    """Trailing qualified revenue over (at - window, at]: approved sales minus reversals."""
    since = at - timedelta(days=window_days)
    rows = await session.exec(
        select(CreditedSource.source_type, func.sum(CreditedSource.revenue_minor))
        .where(
            CreditedSource.partner_id == partner_id,
            CreditedSource.currency == currency,
            col(CreditedSource.effective_at) > since,
            col(CreditedSource.effective_at) <= at,
            col(CreditedSource.source_type).in_(
                [SourceType.SALE_APPROVED, SourceType.SALE_REVERSED]
            ),
        )
        .group_by(col(CreditedSource.source_type))
    )
    sums = {kind: int(total or 0) for kind, total in rows}
    approved = sums.get(SourceType.SALE_APPROVED, 0)
    reversed_ = -sums.get(SourceType.SALE_REVERSED, 0)
    share = await signals.approved_share_bp(session, vendor_id, partner_id, since, at)
    return Standing(
        qualified_revenue_minor=approved - reversed_,
        approved_revenue_minor=approved,
        reversed_revenue_minor=reversed_,
        approved_share_bp=share,
    )


async def window_moves_at(
    session: AsyncSession,
    *,
    partner_id: uuid.UUID,
    currency: str,
    at: datetime,
    window_days: int,
) -> datetime | None:
    """The next instant after ``at`` at which ``standing_at`` changes with no new credit:
    when the oldest sale or reversal in the trailing window leaves it."""
    window = timedelta(days=window_days)
    oldest = await session.scalar(
        select(func.min(CreditedSource.effective_at)).where(
            CreditedSource.partner_id == partner_id,
            CreditedSource.currency == currency,
            col(CreditedSource.effective_at) > at - window,
            col(CreditedSource.effective_at) <= at,
            col(CreditedSource.source_type).in_(
                [SourceType.SALE_APPROVED, SourceType.SALE_REVERSED]
            ),
        )
    )
    return oldest + window if oldest is not None else None


def tier_inputs(rules: Rules, standing: Standing, choice: TierChoice) -> dict[str, Any]:
    return {
        "window_days": rules.window_days,
        "qualified_revenue_minor": standing.qualified_revenue_minor,
        "refund_rate_bp": standing.refund_rate_bp,
        "approved_share_bp": standing.approved_share_bp,
        "tier": choice.tier.name if choice.tier else None,
        "tier_threshold_minor": choice.tier.threshold_minor if choice.tier else None,
        "uplift_bp": choice.uplift_bp,
        "reached_tier": choice.reached.name if choice.reached else None,
        "reached_threshold_minor": choice.reached.threshold_minor if choice.reached else None,
        "gate_failures": choice.gate_failures,
    }


# ---------------------------------------------------------------------------- sales


@dataclass
class _Entries:
    session: AsyncSession
    source: CreditedSource
    booked_at: datetime
    written: list[EarningEntry]

    def add(
        self,
        version: ProgramVersion | None,
        kind: EntryKind,
        amount: int,
        rule: str,
        inputs: dict[str, Any],
        line_key: str = "",
        program_id: uuid.UUID | None = None,
        overlay_id: uuid.UUID | None = None,
    ) -> None:
        entry = EarningEntry(
            vendor_id=self.source.vendor_id,
            partner_id=self.source.partner_id,
            rep_user_id=self.source.rep_user_id,
            source_id=self.source.id,
            source_event_id=self.source.source_event_id,
            program_id=version.program_id if version else program_id,
            program_version_id=version.id if version else None,
            kind=kind,
            line_key=line_key[:100],
            amount_minor=amount,
            currency=self.source.currency,
            rule=rule[:500],
            inputs=inputs,
            effective_at=self.source.effective_at,
            booked_at=self.booked_at,
            overlay_id=overlay_id,
        )
        self.session.add(entry)
        self.written.append(entry)


async def _insert_source(session: AsyncSession, run: Run, source: CreditedSource) -> CreditedSource:
    session.add(source)
    await session.flush()  # the idempotency guard: a second credit of the event fails here
    # Credits of one partner's events run one after another, so each sees the revenue the
    # previous one added to the trailing window (PostgreSQL: a row lock on the partner,
    # NO KEY UPDATE so it does not conflict with the key-share lock the foreign key of the
    # insert above took; SQLite: the transaction already holds the write lock).
    if source.partner_id not in run.locked:
        await session.exec(
            select(Partner.id)
            .where(Partner.id == source.partner_id)
            .with_for_update(key_share=True)
        )
        run.locked.add(source.partner_id)
    return source


async def _entries(
    session: AsyncSession, run: Run, source: CreditedSource, now: datetime
) -> _Entries:
    """The entries ``source`` credits ``now``, booked then or in the first month still
    without statements (``earnings.booking``)."""
    booked = await booking.instant(session, run.closed, source.vendor_id, now)
    return _Entries(session, source, booked, [])


def _lines(amount_minor: int, lines: list[Line]) -> list[Line]:
    return lines or [Line(sku="", units=0, amount_minor=amount_minor)]


def _margin(products: dict[str, Product], lines: list[Line]) -> int:
    return sum(
        apply_bp(ln.amount_minor, products[ln.sku].margin_rate_bp)
        for ln in lines
        if ln.sku in products
    )


async def _credit_sale(
    session: AsyncSession,
    clock: Clock,
    run: Run,
    event: OutboxEvent,
    sale: SaleApproved,
    signals: ClaimSignals,
) -> list[EarningEntry]:
    now = clock.now()
    effective_at = sale.sold_at or sale.approved_at or event.occurred_at
    products: dict[str, Product] = await products_by_sku(
        session, event.vendor_id, [ln.sku for ln in sale.lines if ln.sku]
    )
    source = await _insert_source(
        session,
        run,
        CreditedSource(
            vendor_id=event.vendor_id,
            partner_id=sale.partner_id,
            rep_user_id=sale.rep_user_id,
            source_event_id=event.id,
            source_type=SourceType.SALE_APPROVED,
            subject_id=sale.claim_id,
            region=sale.region,
            currency=sale.currency,
            revenue_minor=sale.amount_minor,
            margin_minor=_margin(products, sale.lines),
            lines=[vars(ln) for ln in sale.lines],
            effective_at=effective_at,
            credited_at=now,
        ),
    )
    out = await _entries(session, run, source, now)
    lines = _lines(sale.amount_minor, sale.lines)  # adds no SKU: the products above serve
    money = Money(sale.amount_minor, sale.currency)
    in_force = await _in_force(
        session, run, event.vendor_id, sale.currency, effective_at, sale.partner_id
    )
    overlays = await overlays_at(session, event.vendor_id, sale.partner_id, effective_at)
    for program, version, rules in in_force:
        standing = await standing_at(
            session, vendor_id=event.vendor_id, partner_id=sale.partner_id,
            currency=sale.currency, at=effective_at, window_days=rules.window_days,
            signals=signals,
        )  # fmt: skip
        choice = programs.select_tier(rules, standing)
        tier = tier_inputs(rules, standing, choice)
        await tier_changes.record_if_changed(
            session, clock, source=event, partner_id=sale.partner_id, program=program,
            rules=rules, before=tier_changes.without(standing, sale.amount_minor),
            after=standing, currency=sale.currency,
        )  # fmt: skip
        for i, line in enumerate(lines):
            product = products.get(line.sku)
            category = product.category if product else ""
            rate = rules.base_rate_for(line.sku, category)
            line_money = Money(line.amount_minor, sale.currency)
            if rate is not None:
                amount = programs.base_amount(rate, line.amount_minor, line.units)
                what = line.sku or "the sale"
                if rate.per_unit_minor is not None:
                    rule = f"{rate.describe(sale.currency)} x {line.units} units of {what}"
                else:
                    rule = f"{rate.describe(sale.currency)} of {line_money.format()} ({what})"
                out.add(
                    version, EntryKind.COMMISSION, amount, _named(program, rule),
                    {
                        "sku": line.sku, "category": category, "units": line.units,
                        "line_amount_minor": line.amount_minor, "rate_bp": rate.rate_bp,
                        "per_unit_minor": rate.per_unit_minor,
                        "rate_for": "sku" if rate.sku else "category" if rate.category
                        else "default",
                        **tier,
                    },
                    line_key=f"{i}:{line.sku}",
                )  # fmt: skip
            for s, spiff in enumerate(rules.spiffs):
                if spiff.applies(line.sku, sale.region, effective_at) and line.units > 0:
                    per_unit = Money(spiff.per_unit_minor, sale.currency).format()
                    where = f" in {spiff.region}" if spiff.region else ""
                    out.add(
                        version, EntryKind.SPIFF, spiff.per_unit_minor * line.units,
                        _named(
                            program, f"Spiff {per_unit} x {line.units} units of {line.sku}{where}"
                        ),
                        {
                            "sku": line.sku, "units": line.units, "region": sale.region,
                            "per_unit_minor": spiff.per_unit_minor,
                            "starts_at": spiff.starts_at.isoformat(),
                            "ends_at": spiff.ends_at.isoformat(),
                        },
                        line_key=f"{i}:{line.sku}:{s}",
                    )  # fmt: skip
        if choice.tier is not None and choice.uplift_bp:
            out.add(
                version, EntryKind.TIER_UPLIFT, apply_bp(sale.amount_minor, choice.uplift_bp),
                _named(
                    program,
                    f"{choice.tier.name} uplift {format_bp(choice.uplift_bp)} of {money.format()}",
                ),
                {"sale_amount_minor": sale.amount_minor, **tier},
            )  # fmt: skip
        on_program = [o for o in overlays if o.program_id == program.id]
        for overlay, paid_bp in zip(on_program, paid_deltas(on_program), strict=True):
            out.add(
                version, EntryKind.RATE_OVERLAY, apply_bp(sale.amount_minor, paid_bp),
                _named(
                    program,
                    # Partner-facing words: never the overlay's source's internal name.
                    f"Incentive overlay {'+' if overlay.delta_bp > 0 else ''}"
                    f"{format_bp(overlay.delta_bp)} of {money.format()} until "
                    f"{overlay.ends_at.day} {overlay.ends_at:%B %Y}"
                    + _trimmed(overlay.delta_bp, paid_bp),
                ),
                {
                    "sale_amount_minor": sale.amount_minor, "overlay_id": str(overlay.id),
                    "delta_bp": overlay.delta_bp, "paid_bp": paid_bp, "source": overlay.source,
                    "source_id": str(overlay.source_id),
                    "starts_at": overlay.starts_at.isoformat(),
                    "ends_at": overlay.ends_at.isoformat(),
                },
                line_key=f"overlay:{overlay.id}", overlay_id=overlay.id,
            )  # fmt: skip
    await session.flush()
    await record_change(
        session, clock, vendor_id=event.vendor_id, partner_id=sale.partner_id,
        entries=out.written, source_at=event.occurred_at,
    )  # fmt: skip
    return out.written


def _trimmed(delta_bp: int, paid_bp: int) -> str:
    """The words for an overlay the cap trimmed at crediting (none when it paid in full)."""
    if paid_bp == delta_bp:
        return ""
    return (
        f", {'+' if paid_bp > 0 else ''}{format_bp(paid_bp)} paid: incentive overlays on a "
        f"program pay at most {format_bp(MAX_OVERLAY_BP)} in all either way"
    )


async def _credit_reversal(
    session: AsyncSession,
    clock: Clock,
    run: Run,
    event: OutboxEvent,
    rev: SaleReversed,
    signals: ClaimSignals,
) -> list[EarningEntry]:
    now = clock.now()
    original = (
        await session.exec(
            select(CreditedSource).where(CreditedSource.source_event_id == rev.reverses_event_id)
        )
    ).first()
    original_revenue = original.revenue_minor if original else rev.amount_minor
    reversed_amount = min(rev.amount_minor, original_revenue) if original else rev.amount_minor
    margin = 0
    if original is not None and original_revenue:
        margin = -divide_rounded(original.margin_minor * reversed_amount, original_revenue)
    source = await _insert_source(
        session,
        run,
        CreditedSource(
            vendor_id=event.vendor_id,
            partner_id=rev.partner_id,
            rep_user_id=rev.rep_user_id,
            source_event_id=event.id,
            source_type=SourceType.SALE_REVERSED,
            subject_id=rev.claim_id,
            reverses_event_id=rev.reverses_event_id,
            region=rev.region,
            currency=rev.currency,
            revenue_minor=-reversed_amount,
            margin_minor=margin,
            lines=[vars(ln) for ln in rev.lines],
            note=rev.reason[:500],
            effective_at=rev.reversed_at or event.occurred_at,
            credited_at=now,
        ),
    )
    out = await _entries(session, run, source, now)
    effective_at = source.effective_at
    for program, _version, rules in await _in_force(
        session, run, event.vendor_id, rev.currency, effective_at, rev.partner_id
    ):
        standing = await standing_at(
            session, vendor_id=event.vendor_id, partner_id=rev.partner_id,
            currency=rev.currency, at=effective_at, window_days=rules.window_days,
            signals=signals,
        )  # fmt: skip
        await tier_changes.record_if_changed(
            session, clock, source=event, partner_id=rev.partner_id, program=program,
            rules=rules, before=tier_changes.without(standing, -reversed_amount),
            after=standing, currency=rev.currency,
        )  # fmt: skip
    if original is not None and original_revenue > 0:
        taken = list(
            await session.exec(
                select(EarningEntry)
                .where(EarningEntry.source_event_id == rev.reverses_event_id)
                .order_by(col(EarningEntry.id))
            )
        )
        versions: dict[uuid.UUID, Rules] = {}
        full = reversed_amount >= original_revenue
        # An overlay entry already taken back whole when its rule was rolled back
        # (earnings.withdrawals) has nothing left to claw back.
        withdrawn = set(
            await session.exec(
                select(EarningEntry.line_key).where(
                    col(EarningEntry.line_key).in_([f"withdrawn:{e.id}" for e in taken])
                )
            )
        )
        for entry in taken:
            if entry.program_version_id is None or f"withdrawn:{entry.id}" in withdrawn:
                continue
            if entry.program_version_id not in versions:
                version = await session.get(ProgramVersion, entry.program_version_id)
                assert version is not None
                versions[entry.program_version_id] = Rules.from_json(version.rules)
            if not versions[entry.program_version_id].clawback:
                continue
            amount = (
                -entry.amount_minor
                if full
                else -divide_rounded(entry.amount_minor * reversed_amount, original_revenue)
            )
            share = "all" if full else f"{reversed_amount}/{original_revenue}"
            out.add(
                None, EntryKind.CLAWBACK, amount,
                f"Clawback of {entry.kind.value.lower().replace('_', ' ')} "
                f"{Money(entry.amount_minor, entry.currency).format()} ({share}): {rev.reason}",
                {
                    "reverses_entry_id": str(entry.id), "reversed_amount_minor": reversed_amount,
                    "original_revenue_minor": original_revenue, "reason": rev.reason,
                    "original_kind": entry.kind.value,
                },
                line_key=f"{entry.kind.value}:{entry.line_key}",
                program_id=entry.program_id,
            )  # fmt: skip
            out.written[-1].program_version_id = entry.program_version_id
    await session.flush()
    await record_change(
        session, clock, vendor_id=event.vendor_id, partner_id=rev.partner_id,
        entries=out.written, source_at=event.occurred_at,
    )  # fmt: skip
    return out.written


async def _credit_deal(
    session: AsyncSession, clock: Clock, run: Run, event: OutboxEvent, deal: DealWon
) -> list[EarningEntry]:
    now = clock.now()
    source = await _insert_source(
        session,
        run,
        CreditedSource(
            vendor_id=event.vendor_id,
            partner_id=deal.partner_id,
            rep_user_id=deal.rep_user_id,
            source_event_id=event.id,
            source_type=SourceType.DEAL_WON,
            subject_id=deal.registration_id,
            region=deal.region,
            currency=deal.currency,
            lines=[vars(ln) for ln in deal.lines],
            effective_at=deal.won_at,
            credited_at=now,
        ),
    )
    out = await _entries(session, run, source, now)
    for program, version, rules in await _in_force(
        session, run, event.vendor_id, deal.currency, deal.won_at, deal.partner_id
    ):
        amount = programs.deal_bonus(rules, deal.amount_minor)
        if amount <= 0:
            continue
        parts = []
        if rules.deal_bonus_minor:
            parts.append(Money(rules.deal_bonus_minor, deal.currency).format())
        if rules.deal_bonus_bp:
            parts.append(
                f"{format_bp(rules.deal_bonus_bp)} of "
                f"{Money(deal.amount_minor, deal.currency).format()}"
            )
        out.add(
            version, EntryKind.DEAL_BONUS, amount,
            _named(program, "Won registered deal bonus: " + " + ".join(parts)),
            {
                "registration_id": str(deal.registration_id),
                "deal_amount_minor": deal.amount_minor,
                "deal_bonus_bp": rules.deal_bonus_bp, "deal_bonus_minor": rules.deal_bonus_minor,
            },
        )  # fmt: skip
    await session.flush()
    await record_change(
        session, clock, vendor_id=event.vendor_id, partner_id=deal.partner_id,
        entries=out.written,
    )  # fmt: skip
    return out.written


# ---------------------------------------------------------------------------- adjustments

ADJUSTMENT_SCOPE = "earningAdjustmentCreate"  # idempotency keys of adjustments
MAX_ADJUSTMENT_MINOR = 10**10


async def adjust(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    partner_id: uuid.UUID,
    amount_minor: int,
    currency: str,
    note: str,
    idempotency_key: str,
    key_retention: timedelta = idempotency.DEFAULT_RETENTION,
) -> EarningEntry:
    """A manual correction: a new ADJUSTMENT entry, never an edit. The same caller's retry
    of the same request with its idempotency key returns the first entry and writes
    nothing (``infra.idempotency``)."""
    EARNINGS.require(principal, EarningsOp.ADJUST)
    await begin_write(session)
    note, key = note.strip(), idempotency_key.strip()
    errors = []
    if not note:
        errors.append(DomainError(EarningsErrorCode.REQUIRED, "Say why.", "note"))
    elif problem := free_text_problem(note):
        errors.append(DomainError(EarningsErrorCode.INVALID_CHARACTERS, problem, "note"))
    if not key:
        errors.append(
            DomainError(EarningsErrorCode.REQUIRED, "Give an idempotency key.", "idempotency_key")
        )
    if amount_minor == 0 or abs(amount_minor) > MAX_ADJUSTMENT_MINOR:
        errors.append(
            DomainError(EarningsErrorCode.INVALID_AMOUNT, "A non-zero amount.", "amount.amount")
        )
    if bad_currency := currency_error(currency, "amount.currency"):
        errors.append(bad_currency)
    if errors:
        raise DomainErrors(errors)
    now = clock.now()
    taken = await idempotency.take(
        session, vendor_id=principal.vendor_id, caller=principal.caller,
        scope=ADJUSTMENT_SCOPE, key=key, now=now, codes=EarningsErrorCode,
        retention=key_retention,
        request={
            "partner_id": partner_id, "amount_minor": amount_minor, "currency": currency,
            "note": note,
        },
    )  # fmt: skip
    assert taken is not None  # the key is required
    if taken.replay is not None:
        first = (
            await session.exec(readable_entries(principal).where(EarningEntry.id == taken.replay))
        ).first()
        if first is None:
            raise idempotency.gone(EarningsErrorCode)
        return first
    if await get_readable_partner(session, principal, partner_id) is None:
        raise DomainError(EarningsErrorCode.NOT_FOUND, "No such partner.", "partner_id")
    source = CreditedSource(
        vendor_id=principal.vendor_id,
        partner_id=partner_id,
        source_event_id=new_id(),  # an adjustment has no source event of its own
        source_type=SourceType.ADJUSTMENT,
        currency=currency,
        note=note[:500],
        effective_at=now,
        credited_at=now,
    )
    session.add(source)
    await session.flush()
    out = await _entries(session, Run(), source, now)
    out.add(
        None, EntryKind.ADJUSTMENT, amount_minor,
        f"Adjustment of {Money(amount_minor, currency).format()}: {note}"[:500],
        {"note": note, "by_user_id": str(principal.user_id) if principal.user_id else None},
    )  # fmt: skip
    await session.flush()
    await taken.done(session, out.written[0].id)
    await record_change(
        session, clock, vendor_id=principal.vendor_id, partner_id=partner_id,
        entries=out.written,
    )  # fmt: skip
    await log_change(
        session, principal, clock, action="adjustment.created",
        entity_type=AuditEntity.ADJUSTMENT, entity_id=out.written[0].id, before=None,
        after={"partner_id": partner_id, "amount_minor": amount_minor, "currency": currency},
        reason=note,
    )  # fmt: skip
    return out.written[0]
