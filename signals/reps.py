"""Rep signals: per partner, rep and day, the facts of the source rows that name the rep
(``facts.compute_reps``) and the rep's snapshot (``compute.rep_values_of``).

They move with the partner's (``signals.maintenance``): a handler's advance of a partner
advances its reps (``advance``: today's rep facts of the events' kinds, read with the
partner's, and the snapshots of the reps whose facts moved); a refresh refreshes them
(``refresh``: rep facts from the first day touched, today's snapshot of every rep with
history, and those already taken since); the daily job calls ``take_due``, the rebuild
``rebuild``. A rep has a snapshot of a day once it has history (a fact row on or before
the day); a past day's is re-taken only where one was taken. Nothing here records
``SignalsChanged``: rules read the partner's signals, never a rep's.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Collection, Iterable
from datetime import date, timedelta
from typing import Any

from sqlalchemy import delete, func, literal_column, union_all
from sqlalchemy import select as sa_select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from infra import jsonio
from infra.clock import Clock
from signals import compute, facts, locks
from signals.compute import LOOKBACK_DAYS, Fact
from signals.models import SignalRepFact, SignalRepSnapshot
from signals.store import Writes, upsert

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
    await locks.hold(session, [vendor_id])  # (held by the caller: a no-op)
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
    await locks.hold(session, [vendor_id])  # (held by the caller: a no-op)
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
    await locks.hold(session, [vendor_id])  # (held by the caller: a no-op)
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


RepKey = tuple[uuid.UUID, uuid.UUID]


async def _load(
    session: AsyncSession,
    vendor_id: uuid.UUID,
    partner_ids: list[uuid.UUID],
    day: date,
    rep_ids: Collection[uuid.UUID] | None = None,
) -> tuple[dict[RepKey, list[Fact]], dict[RepKey, tuple[int, date | None, date | None]]]:
    """The partners' rep facts (``rep_ids``: of those reps) of the look-back ending with
    ``day``, and per rep what lies before it: the pipeline's running sum, the first and the
    last sale. One statement (a handler run pays per statement): the rows before the
    look-back are grouped into one per rep, told apart by a null day."""
    start = day - timedelta(days=LOOKBACK_DAYS - 1)
    where = [
        col(SignalRepFact.vendor_id) == vendor_id, col(SignalRepFact.partner_id).in_(partner_ids)
    ]  # fmt: skip
    if rep_ids is not None:
        where.append(col(SignalRepFact.rep_user_id).in_(list(rep_ids)))
    none: Any = literal_column("NULL")
    window = sa_select(
        col(SignalRepFact.partner_id), col(SignalRepFact.rep_user_id),
        col(SignalRepFact.day).label("day"), none.label("first_sold"), none.label("last_sold"),
        *[getattr(SignalRepFact, name) for name in facts.REP_COUNTERS],
    ).where(*where, col(SignalRepFact.day) >= start, col(SignalRepFact.day) <= day)  # fmt: skip
    history = (
        sa_select(
            col(SignalRepFact.partner_id), col(SignalRepFact.rep_user_id), none,
            func.min(col(SignalRepFact.day)).filter(col(SignalRepFact.sales) > 0),
            func.max(col(SignalRepFact.day)).filter(col(SignalRepFact.sales) > 0),
            *[
                func.sum(col(SignalRepFact.pipeline_delta_minor))
                if name == "pipeline_delta_minor" else literal_column("0")
                for name in facts.REP_COUNTERS
            ],
        )
        .where(*where, col(SignalRepFact.day) < start)
        .group_by(col(SignalRepFact.partner_id), col(SignalRepFact.rep_user_id))
    )  # fmt: skip
    by_rep: dict[RepKey, list[Fact]] = defaultdict(list)
    before: dict[RepKey, tuple[int, date | None, date | None]] = {}
    for partner_id, rep_id, d, first_sold, last_sold, *counts in await session.execute(
        union_all(window, history)
    ):
        counters = {name: int(n or 0) for name, n in zip(facts.REP_COUNTERS, counts, strict=True)}
        if d is not None:
            by_rep[(partner_id, rep_id)].append(Fact(facts.as_day(d), counters))
            continue
        before[(partner_id, rep_id)] = (
            counters["pipeline_delta_minor"],
            facts.as_day(first_sold) if first_sold is not None else None,
            facts.as_day(last_sold) if last_sold is not None else None,
        )
    return by_rep, before


def _basis(
    key: RepKey,
    day: date,
    by_rep: dict[RepKey, list[Fact]],
    before: dict[RepKey, tuple[int, date | None, date | None]],
) -> compute.Basis:
    """The rep's basis of ``day`` from its loaded look-back (``_load``)."""
    pipeline, first_sale, last_sale = before.get(key, (0, None, None))
    return compute.basis(
        day, by_rep.get(key, []), facts.REP_COUNTERS, pipeline_before=pipeline,
        first_sale_before=first_sale, last_sale_before=last_sale,
    )  # fmt: skip


def _snapshot_row(
    key: RepKey,
    day: date,
    vendor_id: uuid.UUID,
    currency: str,
    basis: compute.Basis,
    today: Fact | None,
    now: Any,
) -> dict[str, Any]:
    """The snapshot of ``day``: its values, and the basis and facts of the day they follow
    from (what ``advance`` moves it by)."""
    return {
        "partner_id": key[0], "rep_user_id": key[1], "day": day, "vendor_id": vendor_id,
        "currency": currency, "values": compute.rep_values_of(day, basis, today),
        "basis": basis.to_json(today), "computed_at": now,
    }  # fmt: skip


SNAPSHOT_COLUMNS = ["currency", "values", "basis", "computed_at"]


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
    await locks.hold(session, [vendor_id])  # (held by the caller: a no-op)
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
    by_rep, before = await _load(session, vendor_id, ids, day)
    now = clock.now()
    out: list[dict[str, Any]] = []
    for key in sorted(set(by_rep) | set(before)):
        if wanted is not None and key not in wanted:
            continue
        today = next((f for f in by_rep.get(key, []) if f.day == day), None)
        basis = _basis(key, day, by_rep, before)
        out.append(_snapshot_row(key, day, vendor_id, currency, basis, today, now))
    await upsert(
        session, SignalRepSnapshot, ["partner_id", "rep_user_id", "day"], out, SNAPSHOT_COLUMNS
    )
    return len(out)


async def advance(
    session: AsyncSession,
    clock: Clock,
    vendor_id: uuid.UUID,
    currency: str,
    touched: dict[uuid.UUID, set[str]],
    recomputed: dict[facts.RepKey, facts.DayFacts],
    snapshots: dict[RepKey, tuple[str, Any]],
    writes: Writes,
) -> int:
    """The handlers' way for events of today (``maintenance.advance``): today's rep facts
    of the kinds of source the events tell of, for the partners they name, as recomputed
    with the partners' (``facts.compute_both``: ``recomputed``), stored, and today's
    snapshot moved of the reps whose facts moved. As the partner's: a rep's snapshot of
    today keeps its basis (the days before today, closed) and its facts of today, so it
    moves by the recomputed facts alone, no window read; a rep without one (its first
    fact, or a snapshot stored before bases were kept) is taken from its windows. The
    other reps' snapshots of today stand: the daily job (or a refresh) took them before
    this partner's snapshot of today could be advanced. ``snapshots``: the partners' reps'
    snapshots of today (currency, basis as stored: JSON text or parsed), read with the
    partners' (``maintenance.advance``). The rows go to ``writes``, the caller's writes of
    the partners' rows, which it flushes. Returns how many snapshots were written."""
    await locks.hold(session, [vendor_id])  # (held by the caller: a no-op)
    # The recompute read every partner the run named; only the partners whose facts of
    # today moved (``touched``) can have reps whose facts moved.
    recomputed = {key: found for key, found in recomputed.items() if key[0] in touched}
    if not recomputed:
        return 0  # a day's sources only grow: no rep found, no rep fact of today moved
    today = clock.now().date()
    # Only the reps the recompute found can move: a day's sources only grow, so a rep with
    # facts of today stored is found again. Their snapshots of today, with the basis.
    kept: dict[RepKey, tuple[compute.Basis, Fact]] = {}
    for partner_id, rep_id, _ in recomputed:
        currency_, stored = snapshots.get((partner_id, rep_id), ("", None))
        if isinstance(stored, str | bytes):
            stored = jsonio.loads(stored)
        if currency_ != currency or not stored:
            continue
        basis = compute.Basis.from_json(stored, facts.REP_COUNTERS)
        before = compute.stored_today(stored, today, facts.REP_COUNTERS)
        if basis is not None and before is not None:
            kept[(partner_id, rep_id)] = (basis, before)
    # The others read their windows (one statement for them all).
    keys = {(p, r) for p, r, _ in recomputed} | set(kept)
    taken: dict[RepKey, tuple[compute.Basis, Fact | None]] = dict(kept)
    missing = keys - set(kept)
    if missing:
        await writes.flush()  # (a statement of its own follows: the writes go first)
        by_rep, loaded_before = await _load(
            session, vendor_id, sorted({p for p, _ in missing}), today, {r for _, r in missing}
        )
        stored = {k: f for k, fs in by_rep.items() if k not in kept for f in fs if f.day == today}
        for key in sorted(missing | set(stored)):
            taken[key] = (_basis(key, today, by_rep, loaded_before), stored.get(key))
    now = clock.now()
    fact_rows: list[dict[str, Any]] = []
    emptied: list[RepKey] = []
    snapshot_rows: list[dict[str, Any]] = []
    for key, (basis, old) in sorted(taken.items()):
        counts = dict(old.counts) if old is not None else dict.fromkeys(facts.REP_COUNTERS, 0)
        found = recomputed.get((key[0], key[1], today))
        for category in touched.get(key[0], ()):
            for name in facts.CATEGORIES[category]:
                if name in counts:
                    counts[name] = found.counts[name] if found is not None else 0
        if old is not None and counts == old.counts:
            continue
        if any(counts.values()):
            fact_rows.append(
                {
                    "partner_id": key[0], "rep_user_id": key[1], "day": today,
                    "vendor_id": vendor_id, "currency": currency, **counts,
                }
            )  # fmt: skip
        else:
            emptied.append(key)
        after = Fact(today, counts)
        snapshot_rows.append(_snapshot_row(key, today, vendor_id, currency, basis, after, now))
    writes.upsert(
        SignalRepFact, ["partner_id", "rep_user_id", "day"], fact_rows,
        ["currency", *facts.REP_COUNTERS],
    )  # fmt: skip
    if emptied:
        await writes.flush()
    for partner_id, rep_id in emptied:  # none but by a bug: a day's sources only grow
        await session.execute(
            delete(SignalRepFact).where(
                col(SignalRepFact.partner_id) == partner_id,
                col(SignalRepFact.rep_user_id) == rep_id,
                col(SignalRepFact.day) == today,
            )
        )
    writes.upsert(
        SignalRepSnapshot, ["partner_id", "rep_user_id", "day"], snapshot_rows, SNAPSHOT_COLUMNS
    )
    return len(snapshot_rows)
