"""Rate overlays: a temporary plus or minus on what a program pays one partner, placed by
another part of the product (an incentive rule's firing) through this service, and paid
by crediting (``earnings.ledger``) as a RATE_OVERLAY entry that names it."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from enum import StrEnum

from sqlalchemy import func, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from earnings.errors import EarningsErrorCode
from earnings.models import EarningEntry, Program, RateOverlay
from infra.clock import Clock
from infra.errors import DomainError

# The largest change an overlay may make to a program's rate, either way (10 points).
MAX_OVERLAY_BP = 1_000


def check_delta(delta_bp: int, field: str = "delta_bp") -> None:
    if delta_bp == 0:
        raise DomainError(EarningsErrorCode.INVALID_RATE, "An overlay changes the rate.", field)
    if abs(delta_bp) > MAX_OVERLAY_BP:
        raise DomainError(
            EarningsErrorCode.OVERLAY_BEYOND_CAP,
            f"An overlay changes a rate by at most {MAX_OVERLAY_BP} basis points either way.",
            field,
        )


async def add_overlay(
    session: AsyncSession,
    clock: Clock,
    *,
    program: Program,
    partner_id: uuid.UUID,
    delta_bp: int,
    ends_at: datetime,
    source: str,
    source_id: uuid.UUID,
    label: str,
) -> RateOverlay:
    """An overlay from now until ``ends_at`` on the program for the partner (the caller has
    read ``program`` as the partner's vendor's)."""
    check_delta(delta_bp)
    now = clock.now()
    overlay = RateOverlay(
        vendor_id=program.vendor_id, program_id=program.id, partner_id=partner_id,
        delta_bp=delta_bp,
        starts_at=now, ends_at=ends_at, source=source[:32], source_id=source_id,
        label=label[:200], created_at=now,
    )  # fmt: skip
    session.add(overlay)  # flushed by the caller (a rule run flushes its firings at once)
    return overlay


async def live_overlays(
    session: AsyncSession,
    vendor_id: uuid.UUID,
    partner_ids: Collection[uuid.UUID],
    program_ids: Collection[uuid.UUID],
    at: datetime,
) -> dict[tuple[uuid.UUID, uuid.UUID], list[RateOverlay]]:
    """The overlays running at ``at`` by (partner, program), for these partners and
    programs (read once for a rule run). Overlays start when placed, so these are all the
    overlays a window opening at ``at`` can meet (what ``plan_overlay`` checks the cap over)."""
    out: dict[tuple[uuid.UUID, uuid.UUID], list[RateOverlay]] = {}
    if not partner_ids or not program_ids:
        return out
    rows = await session.exec(
        select(RateOverlay).where(
            RateOverlay.vendor_id == vendor_id,
            col(RateOverlay.partner_id).in_(list(partner_ids)),
            col(RateOverlay.program_id).in_(list(program_ids)),
            col(RateOverlay.starts_at) <= at,
            col(RateOverlay.ends_at) > at,
            or_(col(RateOverlay.ended_at).is_(None), col(RateOverlay.ended_at) > at),
        )
    )
    for overlay in rows:
        out.setdefault((overlay.partner_id, overlay.program_id), []).append(overlay)
    return out


class Placed(StrEnum):
    ADDED = "ADDED"  # a new overlay
    EXTENDED = "EXTENDED"  # the source's live overlay now runs until the later end
    ALREADY_LIVE = "ALREADY_LIVE"  # the source's live overlay already runs as long
    CAP_REACHED = "CAP_REACHED"  # the total would pass MAX_OVERLAY_BP at some instant


def running(live: Collection[RateOverlay], now: datetime) -> list[RateOverlay]:
    """Those of ``live`` still running at ``now``."""
    return [o for o in live if o.ends_at > now and (o.ended_at is None or o.ended_at > now)]


def _end(overlay: RateOverlay) -> datetime:
    """When the overlay stops: its end, or earlier if it was ended."""
    return overlay.ends_at if overlay.ended_at is None else min(overlay.ends_at, overlay.ended_at)


def totals_over(
    overlays: Collection[RateOverlay], start: datetime, end: datetime
) -> tuple[int, int]:
    """The lowest and highest total of these overlays at any instant in [start, end).
    The total only changes where an overlay starts or stops, so it is read at ``start`` and
    at each of those boundaries inside the window (a sweep over them)."""
    inside = [o for o in overlays if o.starts_at < end and _end(o) > start]
    instants = {start} | {t for o in inside for t in (o.starts_at, _end(o)) if start < t < end}
    totals = [sum(o.delta_bp for o in inside if o.starts_at <= t < _end(o)) for t in instants]
    return min(totals), max(totals)


def passes_cap(
    others: Collection[RateOverlay], delta_bp: int, start: datetime, end: datetime
) -> bool:
    """Whether an overlay of ``delta_bp`` over [start, end) would take the total on the
    partner's program past MAX_OVERLAY_BP either way at any instant: the others' totals
    change as they start and stop, so checking only the placement instant is not enough
    (a -5 ending early leaves a +10 and a +5 placed beside it at +15)."""
    low, high = totals_over(others, start, end)
    return max(abs(low + delta_bp), abs(high + delta_bp)) > MAX_OVERLAY_BP


def paid_deltas(in_force: Sequence[RateOverlay]) -> list[int]:
    """What each of the overlays in force on one partner's program pays (basis points, in
    the order given: placement order), the total held to MAX_OVERLAY_BP either way.
    Placement keeps the total within the cap over each new window, but ending an overlay
    early (a rule rolled back) can still lift it past: a -5 ended beside a +10 and a +5.
    So crediting clamps too, trimming the latest-placed overlays on the side in excess."""
    paid = [o.delta_bp for o in in_force]
    excess = sum(paid) - max(-MAX_OVERLAY_BP, min(MAX_OVERLAY_BP, sum(paid)))
    for i in reversed(range(len(paid))):
        if excess == 0:
            break
        if paid[i] * excess > 0:  # the same side as the excess
            cut = paid[i] if abs(paid[i]) <= abs(excess) else excess
            paid[i] -= cut
            excess -= cut
    return paid


def plan_overlay(
    live: Collection[RateOverlay],
    now: datetime,
    *,
    delta_bp: int,
    ends_at: datetime,
    source: str,
    source_id: uuid.UUID,
) -> tuple[Placed, RateOverlay | None]:
    """What placing an overlay would do, given what runs on the partner's program
    (``live``), without doing it: ADDED, EXTENDED or ALREADY_LIVE (with the source's live
    overlay), or CAP_REACHED. ``place_overlay`` does it; a rule's dry run only asks."""
    own = next(
        (o for o in running(live, now) if o.source == source[:32] and o.source_id == source_id),
        None,
    )
    if own is not None:
        if ends_at <= own.ends_at:
            return Placed.ALREADY_LIVE, own
        # Only the added days are new: the cap must hold over them too.
        others = [o for o in live if o is not own]
        if passes_cap(others, own.delta_bp, own.ends_at, ends_at):
            return Placed.CAP_REACHED, own
        return Placed.EXTENDED, own
    if passes_cap(live, delta_bp, now, ends_at):
        return Placed.CAP_REACHED, None
    return Placed.ADDED, None


async def place_overlay(
    session: AsyncSession,
    clock: Clock,
    *,
    program: Program,
    partner_id: uuid.UUID,
    delta_bp: int,
    ends_at: datetime,
    source: str,
    source_id: uuid.UUID,
    label: str,
    live: list[RateOverlay],
) -> tuple[RateOverlay | None, Placed, datetime | None]:
    """Place an overlay without stacking: a source has at most one live overlay per
    (partner, program) — a new placement extends it — and the live overlays on one
    partner's program total at most ``MAX_OVERLAY_BP`` either way. ``live`` is what runs
    now on this partner's program (``live_overlays``); it is kept up to date. Returns the
    overlay placed or extended (None when refused), what happened, and the end it had
    before an extension."""
    check_delta(delta_bp)
    placed, own = plan_overlay(
        live, clock.now(), delta_bp=delta_bp, ends_at=ends_at, source=source,
        source_id=source_id,
    )  # fmt: skip
    match placed:
        case Placed.ALREADY_LIVE:
            return own, placed, None
        case Placed.EXTENDED:
            assert own is not None
            before = own.ends_at
            own.ends_at = ends_at
            session.add(own)
            return own, placed, before
        case Placed.CAP_REACHED:
            return None, placed, None
    overlay = await add_overlay(
        session, clock, program=program, partner_id=partner_id, delta_bp=delta_bp,
        ends_at=ends_at, source=source, source_id=source_id, label=label,
    )  # fmt: skip
    live.append(overlay)
    return overlay, Placed.ADDED, None


async def _running(
    session: AsyncSession, overlay_ids: Collection[uuid.UUID], now: datetime
) -> list[RateOverlay]:
    """Those of these overlays still running at ``now`` (not ended, end still to come)."""
    return list(
        await session.exec(
            select(RateOverlay).where(
                col(RateOverlay.id).in_(list(overlay_ids)),
                col(RateOverlay.ended_at).is_(None),
                col(RateOverlay.ends_at) > now,
            )
        )
    )


async def end_overlays(
    session: AsyncSession, clock: Clock, *, overlay_ids: Collection[uuid.UUID]
) -> list[RateOverlay]:
    """End now those of these overlays that are still running (sales effective from now on
    no longer get them). Returns those ended."""
    if not overlay_ids:
        return []
    now = clock.now()
    rows = await _running(session, overlay_ids, now)
    for overlay in rows:
        overlay.ended_at = now
        session.add(overlay)
    await session.flush()
    return rows


async def shorten_overlays(
    session: AsyncSession, clock: Clock, *, ends: Mapping[uuid.UUID, datetime]
) -> list[RateOverlay]:
    """Give these running overlays back an earlier end (an extension withdrawn): the end if
    it is still to come, else they end now. Returns those changed."""
    if not ends:
        return []
    now = clock.now()
    rows = await _running(session, ends, now)
    changed = []
    for overlay in rows:
        end = ends[overlay.id]
        if end <= now:
            overlay.ended_at = now
        elif end < overlay.ends_at:
            overlay.ends_at = end
        else:
            continue
        session.add(overlay)
        changed.append(overlay)
    await session.flush()
    return changed


async def overlays_at(
    session: AsyncSession, vendor_id: uuid.UUID, partner_id: uuid.UUID, at: datetime
) -> list[RateOverlay]:
    """The partner's overlays in force at ``at`` (a sale's effective time)."""
    rows = await session.exec(
        select(RateOverlay)
        .where(
            RateOverlay.vendor_id == vendor_id,
            RateOverlay.partner_id == partner_id,
            col(RateOverlay.starts_at) <= at,
            col(RateOverlay.ends_at) > at,
            or_(col(RateOverlay.ended_at).is_(None), col(RateOverlay.ended_at) > at),
        )
        .order_by(col(RateOverlay.starts_at), col(RateOverlay.id))
    )
    return list(rows)


async def paid_by_sources(
    session: AsyncSession, *, source: str, source_ids: Collection[uuid.UUID], currency: str
) -> int:
    """What the overlays of these sources have paid so far in ``currency`` (minor units;
    clawbacks of their entries are not netted: a budget counts what was paid out)."""
    if not source_ids:
        return 0
    total = await session.scalar(
        select(func.coalesce(func.sum(EarningEntry.amount_minor), 0))
        .join(RateOverlay, col(RateOverlay.id) == col(EarningEntry.overlay_id))
        .where(
            RateOverlay.source == source,
            col(RateOverlay.source_id).in_(list(source_ids)),
            EarningEntry.currency == currency,
        )
    )
    return int(total or 0)
