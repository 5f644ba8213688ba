"""Rep signals: per partner, rep and day, the facts of the source rows that name the rep
(``facts.compute_reps``) and the rep's snapshot (``compute.rep_values_of``).

They move with the partner's: ``signals.maintenance`` calls ``refresh`` wherever it
recomputes a partner's facts (the handlers' advance and refresh), ``take_due`` from the
daily job and ``rebuild`` from the rebuild. A rep has a snapshot of a day once it has
history (a fact row on or before the day): today's is taken for every rep with history
of the partners an event names, and of every partner when the day starts; a past day's is
re-taken only where one was taken. Nothing here records ``SignalsChanged``: rules read
the partner's signals, never a rep's.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Collection, Iterable
from datetime import date, timedelta
from typing import Any

from sqlalchemy import delete, func
from sqlalchemy import select as sa_select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from infra.clock import Clock
from signals import compute, facts
from signals.compute import LOOKBACK_DAYS, Fact
from signals.models import SignalRepFact, SignalRepSnapshot
from signals.store import upsert

# Partners per batch (bounds the IN lists and the facts held in memory).
CHUNK = 2_000

RepDay = tuple[uuid.UUID, uuid.UUID, date]


async def refresh(
    session: AsyncSession,
    clock: Clock,
    vendor_id: uuid.UUID,
    currency: str,
    partner_ids: Collection[uuid.UUID],
    first: date,
) -> int:
    """Recompute the partners' rep facts from ``first`` to today, then the snapshots of
    today of their reps with history, and those already taken of the days since ``first``.
    Returns how many snapshots were written."""
    today = clock.now().date()
    first = min(first, today)
    ids = sorted(set(partner_ids))
    if not ids:
        return 0
    found = await facts.compute_reps(
        session, vendor_id, currency, partner_ids=ids, first=first, last=today
    )
    await _replace(session, vendor_id, currency, found, ids, first, today)
    written = await take(session, clock, vendor_id, currency, ids, today)
    if first < today:
        written += await _retake(
            session, clock, vendor_id, currency, ids, first, today - timedelta(days=1)
        )
    return written


async def take_due(session: AsyncSession, clock: Clock, vendor_id: uuid.UUID, currency: str) -> int:
    """The day starts: today's snapshot of every rep with history that has none yet, and
    yesterday's re-taken where one was taken (its last minutes)."""
    today = clock.now().date()
    mine = (col(SignalRepSnapshot.partner_id) == SignalRepFact.partner_id) & (
        col(SignalRepSnapshot.rep_user_id) == SignalRepFact.rep_user_id
    )
    taken = sa_select(col(SignalRepSnapshot.partner_id)).where(
        mine, col(SignalRepSnapshot.day) == today
    )
    due = list(
        (
            await session.execute(
                sa_select(col(SignalRepFact.partner_id))
                .where(col(SignalRepFact.vendor_id) == vendor_id, ~taken.exists())
                .distinct()
            )
        ).scalars()
    )
    if not due:
        return 0
    yesterday = today - timedelta(days=1)
    return await _retake(session, clock, vendor_id, currency, due, yesterday, yesterday) + (
        await take(session, clock, vendor_id, currency, due, today)
    )


async def rebuild(
    session: AsyncSession, clock: Clock, vendor_id: uuid.UUID, currency: str, first: date
) -> int:
    """All of a vendor's rep facts from the source tables (from ``first``), every rep
    snapshot it had re-taken, and today's of every rep with history. Returns the fact rows."""
    today = clock.now().date()
    found = await facts.compute_reps(
        session, vendor_id, currency, partner_ids=None, first=first, last=today
    )
    await session.execute(delete(SignalRepFact).where(col(SignalRepFact.vendor_id) == vendor_id))
    await _insert(session, vendor_id, currency, found)
    partners = sorted({partner_id for partner_id, _, _ in found})
    stored = await session.execute(
        sa_select(col(SignalRepSnapshot.partner_id))
        .where(col(SignalRepSnapshot.vendor_id) == vendor_id)
        .distinct()
    )
    partners = sorted(set(partners) | set(stored.scalars()))
    for i in range(0, len(partners), CHUNK):
        chunk = partners[i : i + CHUNK]
        await _retake(session, clock, vendor_id, currency, chunk, None, today - timedelta(days=1))
        await take(session, clock, vendor_id, currency, chunk, today)
    return len(found)


async def _replace(
    session: AsyncSession,
    vendor_id: uuid.UUID,
    currency: str,
    found: dict[facts.RepKey, facts.DayFacts],
    partner_ids: list[uuid.UUID],
    first: date,
    last: date,
) -> None:
    await session.execute(
        delete(SignalRepFact).where(
            col(SignalRepFact.vendor_id) == vendor_id,
            col(SignalRepFact.partner_id).in_(partner_ids),
            col(SignalRepFact.day) >= first,
            col(SignalRepFact.day) <= last,
        )
    )
    await _insert(session, vendor_id, currency, found)


async def _insert(
    session: AsyncSession,
    vendor_id: uuid.UUID,
    currency: str,
    found: dict[facts.RepKey, facts.DayFacts],
) -> None:
    rows = [
        {
            "partner_id": partner_id, "rep_user_id": rep_id, "day": day,
            "vendor_id": vendor_id, "currency": currency, **f.counts,
        }
        for (partner_id, rep_id, day), f in sorted(found.items())
    ]  # fmt: skip
    table = SignalRepFact.__table__  # type: ignore[attr-defined]
    for i in range(0, len(rows), 5000):
        await session.execute(table.insert(), rows[i : i + 5000])


async def _retake(
    session: AsyncSession,
    clock: Clock,
    vendor_id: uuid.UUID,
    currency: str,
    partner_ids: list[uuid.UUID],
    first: date | None,
    last: date,
) -> int:
    """Re-take the partners' rep snapshots already taken of [first, last]."""
    statement = sa_select(
        col(SignalRepSnapshot.partner_id), col(SignalRepSnapshot.rep_user_id),
        col(SignalRepSnapshot.day),
    ).where(
        col(SignalRepSnapshot.vendor_id) == vendor_id,
        col(SignalRepSnapshot.partner_id).in_(partner_ids),
        col(SignalRepSnapshot.day) <= last,
    )  # fmt: skip
    if first is not None:
        statement = statement.where(col(SignalRepSnapshot.day) >= first)
    by_day: dict[date, set[RepDay]] = defaultdict(set)
    for partner_id, rep_id, day in await session.execute(statement):
        day = facts.as_day(day)
        by_day[day].add((partner_id, rep_id, day))
    written = 0
    for day, keys in sorted(by_day.items()):
        partners = sorted({p for p, _, _ in keys})
        written += await take(session, clock, vendor_id, currency, partners, day, only=keys)
    return written


async def take(
    session: AsyncSession,
    clock: Clock,
    vendor_id: uuid.UUID,
    currency: str,
    partner_ids: Collection[uuid.UUID],
    day: date,
    *,
    only: Iterable[RepDay] | None = None,
) -> int:
    """Compute and store the snapshots of ``day`` of the partners' reps with history on or
    before it (``only``: of those reps alone). Returns how many were written."""
    ids = sorted(set(partner_ids))
    if not ids:
        return 0
    if len(ids) > CHUNK:
        written = 0
        for i in range(0, len(ids), CHUNK):
            part = ids[i : i + CHUNK]
            written += await take(session, clock, vendor_id, currency, part, day, only=only)
        return written
    wanted = None if only is None else {(p, r) for p, r, d in only if d == day}
    start = day - timedelta(days=LOOKBACK_DAYS - 1)
    mine = col(SignalRepFact.partner_id).in_(ids)
    by_rep: dict[tuple[uuid.UUID, uuid.UUID], list[Fact]] = defaultdict(list)
    rows = await session.execute(
        sa_select(
            col(SignalRepFact.partner_id), col(SignalRepFact.rep_user_id), col(SignalRepFact.day),
            *[getattr(SignalRepFact, name) for name in facts.REP_COUNTERS],
        ).where(
            col(SignalRepFact.vendor_id) == vendor_id, mine,
            col(SignalRepFact.day) >= start, col(SignalRepFact.day) <= day,
        )
    )  # fmt: skip
    for partner_id, rep_id, d, *counts in rows:
        counters = dict(zip(facts.REP_COUNTERS, counts, strict=True))
        by_rep[(partner_id, rep_id)].append(Fact(facts.as_day(d), counters))
    before: dict[tuple[uuid.UUID, uuid.UUID], tuple[int, date | None, date | None]] = {}
    for partner_id, rep_id, total, first_sold, last_sold in await session.execute(
        sa_select(
            col(SignalRepFact.partner_id), col(SignalRepFact.rep_user_id),
            func.sum(col(SignalRepFact.pipeline_delta_minor)),
            func.min(col(SignalRepFact.day)).filter(col(SignalRepFact.sales) > 0),
            func.max(col(SignalRepFact.day)).filter(col(SignalRepFact.sales) > 0),
        )
        .where(col(SignalRepFact.vendor_id) == vendor_id, mine, col(SignalRepFact.day) < start)
        .group_by(col(SignalRepFact.partner_id), col(SignalRepFact.rep_user_id))
    ):  # fmt: skip
        before[(partner_id, rep_id)] = (
            int(total or 0),
            facts.as_day(first_sold) if first_sold is not None else None,
            facts.as_day(last_sold) if last_sold is not None else None,
        )
    now = clock.now()
    out: list[dict[str, Any]] = []
    for key in sorted(set(by_rep) | set(before)):
        if wanted is not None and key not in wanted:
            continue
        loaded = by_rep.get(key, [])
        pipeline, first_sale, last_sale = before.get(key, (0, None, None))
        basis = compute.basis(
            day, loaded, facts.REP_COUNTERS, pipeline_before=pipeline,
            first_sale_before=first_sale, last_sale_before=last_sale,
        )  # fmt: skip
        today = next((f for f in loaded if f.day == day), None)
        out.append(
            {
                "partner_id": key[0], "rep_user_id": key[1], "day": day,
                "vendor_id": vendor_id, "currency": currency,
                "values": compute.rep_values_of(day, basis, today), "computed_at": now,
            }
        )  # fmt: skip
    await upsert(
        session, SignalRepSnapshot, ["partner_id", "rep_user_id", "day"], out,
        ["currency", "values", "computed_at"],
    )  # fmt: skip
    return len(out)
