"""Keeping facts and snapshots: one function per way they move.

- ``refresh``: the outbox handlers, for the partners and days a run of events touched
  (facts recomputed from their sources, then those days' snapshots);
- ``take_due``: the daily job, for partners without a snapshot of today yet (the windows
  move and "days since" grows with no event at all);
- ``rebuild``: ``channelboard signals rebuild``, everything from the source tables.

Each snapshot write records ``SignalsChanged`` with the names whose values changed, in the
same transaction, so the rules hear of exactly what they read.

Every writer holds the vendor's signal lock first (``signals.locks``): writers of one
vendor run one after the other, whatever rows they touch.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    BindParameter,
    ColumnElement,
    Date,
    Exists,
    String,
    Text,
    Uuid,
    and_,
    bindparam,
    case,
    cast,
    delete,
    func,
    join,
    literal,
    null,
    union_all,
)
from sqlalchemy import select as sa_select
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from deal_registration.registrations.models import DealTransition
from deal_registration.sales.models import SaleClaim, SalesSettings
from earnings.models import CreditedSource, Program, ProgramKind
from earnings.rounding import BP
from forecasts.accuracy import accuracies_recorded
from forecasts.guardrails import alerts_fired
from forecasts.quarters import Quarter
from infra import jsonio
from infra.clock import Clock
from infra.db import execute_core
from infra.outbox import OutboxEvent, event_rows, record_events
from partners.models import Partner
from signals import compute, facts, locks, reps
from signals.compute import LOOKBACK_DAYS, Extras, Fact
from signals.events import SignalsChanged
from signals.models import SignalActiveUser, SignalFact, SignalRepSnapshot, SignalSnapshot
from signals.snapshots import Values, complete
from signals.store import Writes, upsert

DEFAULT_CURRENCY = "USD"
# Partners per batch of snapshots (a database's limit on bind parameters is ~32,000).
CHUNK = 2_000


def currency_expression(vendor_id: uuid.UUID | BindParameter[Any]) -> ColumnElement[str]:
    """The currency a vendor's money signals are in, in SQL: that of its program (the
    oldest BASE program, else the oldest program), else of its claim settings, else USD.
    Sales, earnings and deals in other currencies are left out, never converted."""
    program = (
        sa_select(col(Program.currency))
        .where(col(Program.vendor_id) == vendor_id)
        .order_by(
            case((col(Program.kind) == ProgramKind.BASE, 0), else_=1),
            col(Program.created_at), col(Program.id),
        )
        .limit(1)
        .scalar_subquery()
    )  # fmt: skip
    settings = (
        sa_select(col(SalesSettings.auto_approve_currency))
        .where(col(SalesSettings.vendor_id) == vendor_id)
        .scalar_subquery()
    )
    return func.coalesce(program, settings, literal(DEFAULT_CURRENCY, String))


async def signal_currency(session: AsyncSession, vendor_id: uuid.UUID) -> str:
    """The vendor's signal currency (``currency_expression``), in one query."""
    currency: str = (await session.execute(sa_select(currency_expression(vendor_id)))).scalar_one()
    return currency


async def refresh(
    session: AsyncSession,
    clock: Clock,
    vendor_id: uuid.UUID,
    partner_ids: Collection[uuid.UUID],
    first: date,
) -> list[SignalsChanged]:
    """Recompute the partners' facts from ``first`` to today, then their snapshots: today's,
    and those already taken of the days since ``first`` (normally none: a handler lags its
    event by seconds; after a dispatcher outage, the days the daily job took meanwhile)."""
    today = clock.now().date()
    first = min(first, today)
    await locks.hold(session, [vendor_id])
    currency = await signal_currency(session, vendor_id)
    found = await facts.compute(
        session, vendor_id, currency, partner_ids=partner_ids, first=first, last=today
    )
    await facts.replace(
        session, vendor_id, currency, found, partner_ids=partner_ids, first=first, last=today
    )
    by_day: dict[date, set[uuid.UUID]] = defaultdict(set)
    by_day[today] = set(partner_ids)
    if first < today:
        pairs = await session.exec(
            select(col(SignalSnapshot.day), col(SignalSnapshot.partner_id)).where(
                SignalSnapshot.vendor_id == vendor_id,
                col(SignalSnapshot.partner_id).in_(list(partner_ids)),
                col(SignalSnapshot.day) >= first,
                col(SignalSnapshot.day) < today,
            )
        )
        for day, partner_id in pairs:
            by_day[day].add(partner_id)
    changes = []
    for day, ids in sorted(by_day.items()):
        changes += await take(session, clock, vendor_id, currency, sorted(ids), [day])
    await reps.refresh(session, clock, vendor_id, currency, partner_ids, first)
    return changes


def has_snapshot(day: date) -> Exists:
    """The partner (of the enclosing query) has a snapshot of ``day``: a primary-key lookup
    per partner, where NOT IN would read every snapshot of the day each minute."""
    return (
        select(SignalSnapshot.partner_id)
        .where(col(SignalSnapshot.partner_id) == Partner.id, SignalSnapshot.day == day)
        .exists()
    )


async def take_due(session: AsyncSession, clock: Clock, vendor_id: uuid.UUID) -> int:
    """Take today's snapshot of each of the vendor's partners that has none yet (and
    re-take yesterday's, which the last minutes' activity may have moved). Returns how
    many partners were due."""
    await locks.hold(session, [vendor_id])
    today = clock.now().date()
    due = list(
        await session.exec(
            select(Partner.id)
            .where(Partner.vendor_id == vendor_id, ~has_snapshot(today))
            .order_by(col(Partner.id))
        )
    )
    if not due:
        return 0
    currency = await signal_currency(session, vendor_id)
    await take(session, clock, vendor_id, currency, due, [today - timedelta(days=1), today])
    await reps.take_due(session, clock, vendor_id, currency)
    return len(due)


async def rebuild(session: AsyncSession, clock: Clock, vendor_id: uuid.UUID) -> tuple[int, int]:
    """Recompute all of a vendor's facts from the source tables, then every snapshot it
    had (and today's for every partner). Returns (fact rows, snapshots that changed)."""
    await locks.hold(session, [vendor_id])
    today = clock.now().date()
    currency = await signal_currency(session, vendor_id)
    first = await _first_source_day(session, vendor_id) or today
    found = await facts.compute(
        session, vendor_id, currency, partner_ids=None, first=first, last=today
    )
    # Facts of the vendor older than its first source row (none but by a bug) go too.
    await session.exec(delete(SignalFact).where(col(SignalFact.vendor_id) == vendor_id))
    await facts.replace(
        session, vendor_id, currency, found, partner_ids=None, first=first, last=today
    )
    # Every snapshot taken before is re-taken (the history rules read stays complete), and
    # today's of every partner.
    pairs = await session.exec(
        select(col(SignalSnapshot.day), col(SignalSnapshot.partner_id)).where(
            SignalSnapshot.vendor_id == vendor_id
        )
    )
    by_day: dict[date, set[uuid.UUID]] = defaultdict(set)
    for day, partner_id in pairs:
        by_day[day].add(partner_id)
    by_day[today] |= set(
        await session.exec(select(Partner.id).where(Partner.vendor_id == vendor_id))
    )
    written = 0
    for day, partner_ids in sorted(by_day.items()):
        written += len(await take(session, clock, vendor_id, currency, sorted(partner_ids), [day]))
    await reps.rebuild(session, clock, vendor_id, currency, first)
    return len(found), written


async def _first_source_day(session: AsyncSession, vendor_id: uuid.UUID) -> date | None:
    first = (
        await session.exec(
            select(func.min(CreditedSource.credited_at)).where(
                CreditedSource.vendor_id == vendor_id
            )
        )
    ).first()
    claims = (
        await session.exec(
            select(func.min(SaleClaim.created_at)).where(SaleClaim.vendor_id == vendor_id)
        )
    ).first()
    deals = (
        await session.exec(
            select(func.min(DealTransition.at)).where(DealTransition.vendor_id == vendor_id)
        )
    ).first()
    instants = [i for i in (first, claims, deals) if i is not None]
    return min(facts.as_day(i) for i in instants) if instants else None


@dataclass
class _Loaded:
    facts: dict[uuid.UUID, list[Fact]]
    pipeline_before: dict[uuid.UUID, int]
    first_sale_before: dict[uuid.UUID, date]
    last_sale_before: dict[uuid.UUID, date]
    active: dict[uuid.UUID, list[tuple[date, uuid.UUID]]]
    # (day recorded, accuracy) oldest first; (quarter, day raised) of alerts naming it.
    accuracy: dict[uuid.UUID, list[tuple[date, float]]]
    alerts: dict[uuid.UUID, list[tuple[str, date]]]


async def _load(
    session: AsyncSession,
    vendor_id: uuid.UUID,
    partner_ids: Collection[uuid.UUID],
    first: date,
    last: date,
) -> _Loaded:
    """Facts of [first - look-back, last], and what lies before that window."""
    start = first - timedelta(days=LOOKBACK_DAYS - 1)
    ids = list(partner_ids)
    mine = col(SignalFact.partner_id).in_(ids)
    by_partner: dict[uuid.UUID, list[Fact]] = defaultdict(list)
    # Columns, not ORM rows: this runs for every run of events (the CPU budget is per sale).
    fact_columns = [getattr(SignalFact, name) for name in facts.COUNTERS]
    rows = await session.execute(
        sa_select(
            col(SignalFact.partner_id), col(SignalFact.day), col(SignalFact.response_seconds),
            *fact_columns,
        ).where(
            col(SignalFact.vendor_id) == vendor_id, mine,
            col(SignalFact.day) >= start, col(SignalFact.day) <= last,
        )
    )  # fmt: skip
    for partner_id, day, seconds, *counts in rows:
        day = facts.as_day(day)
        fact = Fact(day, dict(zip(facts.COUNTERS, counts, strict=True)), tuple(seconds or ()))
        by_partner[partner_id].append(fact)
    before = await session.execute(
        sa_select(
            col(SignalFact.partner_id), func.sum(col(SignalFact.pipeline_delta_minor)),
            func.min(col(SignalFact.day)).filter(col(SignalFact.sales) > 0),
            func.max(col(SignalFact.day)).filter(col(SignalFact.sales) > 0),
        )
        .where(col(SignalFact.vendor_id) == vendor_id, mine, col(SignalFact.day) < start)
        .group_by(col(SignalFact.partner_id))
    )  # fmt: skip
    pipeline: dict[uuid.UUID, int] = {}
    first_sale: dict[uuid.UUID, date] = {}
    last_before: dict[uuid.UUID, date] = {}
    for partner_id, total, first_sold, last_sold in before:
        pipeline[partner_id] = int(total or 0)
        if first_sold is not None:
            first_sale[partner_id] = facts.as_day(first_sold)
        if last_sold is not None:
            last_before[partner_id] = facts.as_day(last_sold)
    active: dict[uuid.UUID, list[tuple[date, uuid.UUID]]] = defaultdict(list)
    users = await session.exec(
        select(
            col(SignalActiveUser.partner_id),
            col(SignalActiveUser.day),
            col(SignalActiveUser.user_id),
        ).where(
            SignalActiveUser.vendor_id == vendor_id,
            col(SignalActiveUser.partner_id).in_(ids),
            col(SignalActiveUser.day) >= first - timedelta(days=29),
            col(SignalActiveUser.day) <= last,
        )
    )
    for partner_id, day, user_id in users:
        active[partner_id].append((facts.as_day(day), user_id))
    until = facts.start_of(last + timedelta(days=1))
    accuracy: dict[uuid.UUID, list[tuple[date, float]]] = defaultdict(list)
    for row in await accuracies_recorded(session, vendor_id, ids, until):
        accuracy[row.partner_id].append((facts.as_day(row.recorded_at), row.accuracy_bp / BP))
    alerts: dict[uuid.UUID, list[tuple[str, date]]] = defaultdict(list)
    quarters = {Quarter.of(facts.start_of(first)).key, Quarter.of(facts.start_of(last)).key}
    quarter = Quarter.of(facts.start_of(first)).next()
    while quarter.starts_at < until:  # a rebuild's range may span several quarters
        quarters.add(quarter.key)
        quarter = quarter.next()
    wanted = {str(i): i for i in ids}
    for alert in await alerts_fired(session, vendor_id, quarters, until):
        for named in alert.top_partner_ids:
            if named in wanted:
                alerts[wanted[named]].append((alert.quarter, facts.as_day(alert.fired_at)))
    return _Loaded(by_partner, pipeline, first_sale, last_before, active, accuracy, alerts)


def _basis(loaded: _Loaded, partner_id: uuid.UUID, day: date) -> compute.Basis:
    """What the snapshot of ``day`` reads from the days before it: the loaded facts start
    where ``pipeline_before`` and the sales before end."""
    return compute.basis(
        day,
        loaded.facts.get(partner_id, []),
        facts.COUNTERS,
        pipeline_before=loaded.pipeline_before.get(partner_id, 0),
        first_sale_before=loaded.first_sale_before.get(partner_id),
        last_sale_before=loaded.last_sale_before.get(partner_id),
    )


def _today(loaded: _Loaded, partner_id: uuid.UUID, day: date) -> Fact | None:
    return next((f for f in loaded.facts.get(partner_id, []) if f.day == day), None)


def _extras(loaded: _Loaded, partner_id: uuid.UUID, day: date) -> Extras:
    active = loaded.active.get(partner_id, [])

    def users(days: int) -> int:
        since = day - timedelta(days=days - 1)
        return len({user for d, user in active if since <= d <= day})

    recorded = [value for on, value in loaded.accuracy.get(partner_id, []) if on <= day]
    quarter = Quarter.of(facts.start_of(day)).key
    return Extras(
        active_users_7d=users(7),
        active_users_30d=users(30),
        forecast_accuracy=recorded[-1] if recorded else None,
        concentration_alert_open=any(
            q == quarter and on <= day for q, on in loaded.alerts.get(partner_id, [])
        ),
    )


async def take(
    session: AsyncSession,
    clock: Clock,
    vendor_id: uuid.UUID,
    currency: str,
    partner_ids: Collection[uuid.UUID],
    days: Iterable[date],
) -> list[SignalsChanged]:
    """Compute and store the partners' snapshots of ``days``; record ``SignalsChanged``
    for each that changed. Returns those changes."""
    await locks.hold(session, [vendor_id])
    days = sorted(set(days))
    if not partner_ids or not days:
        return []
    ids = list(partner_ids)
    if len(ids) > CHUNK:  # bound the IN lists (and the facts held in memory)
        chunked: list[SignalsChanged] = []
        for i in range(0, len(ids), CHUNK):
            chunked += await take(session, clock, vendor_id, currency, ids[i : i + CHUNK], days)
        return chunked
    loaded = await _load(session, vendor_id, ids, days[0], days[-1])
    existing: dict[tuple[uuid.UUID, date], tuple[str, dict[str, Any], Any]] = {
        (partner_id, facts.as_day(day)): (currency_, values_, basis_)
        for partner_id, day, currency_, values_, basis_ in await session.execute(
            sa_select(
                col(SignalSnapshot.partner_id), col(SignalSnapshot.day),
                col(SignalSnapshot.currency), col(SignalSnapshot.values),
                col(SignalSnapshot.basis),
            ).where(
                col(SignalSnapshot.vendor_id) == vendor_id,
                col(SignalSnapshot.partner_id).in_(ids),
                col(SignalSnapshot.day).in_(days),
            )
        )
    }  # fmt: skip
    now = clock.now()
    changes: list[SignalsChanged] = []
    rows = []
    for day in days:
        for partner_id in ids:
            basis = _basis(loaded, partner_id, day)
            today = _today(loaded, partner_id, day)
            values = compute.values_of(day, basis, today, _extras(loaded, partner_id, day))
            old = existing.get((partner_id, day))
            before: Values = complete(old[1]) if old is not None else {}
            stored_basis = basis.to_json(today)
            if (
                old is not None and before == values and old[0] == currency
                and old[2] == stored_basis
            ):  # fmt: skip
                continue
            names = [name for name, value in values.items() if before.get(name, ...) != value]
            if names or old is None or old[0] != currency:
                changes.append(SignalsChanged(vendor_id, partner_id, day, names))
            rows.append(
                {
                    "partner_id": partner_id, "day": day, "vendor_id": vendor_id,
                    "currency": currency, "values": values, "basis": stored_basis,
                    "computed_at": now,
                }
            )  # fmt: skip
    if not rows:
        return changes
    await upsert(
        session, SignalSnapshot, ["partner_id", "day"], rows,
        ["currency", "values", "basis", "computed_at"],
    )  # fmt: skip
    await _announce(session, clock, vendor_id, now, changes)
    return changes


async def _announce(
    session: AsyncSession,
    clock: Clock,
    vendor_id: uuid.UUID,
    now: datetime,
    changes: list[SignalsChanged],
) -> None:
    """Record ``SignalsChanged`` for each change, in the snapshot's transaction, at the
    snapshot's instant."""
    await record_events(
        session,
        clock,
        [(vendor_id, change.type, change.partner_id, change.to_payload()) for change in changes],
        at=now,
    )


# ``advance``'s read: which part a row comes from (the snapshots, or a kind of source),
# and the types of a source row's columns after the partner's.
_SNAPSHOTS = "snapshots"
_SOURCE_TYPES = (Uuid(), Date(), String(), BigInteger(), BigInteger(), BigInteger())


@cache
def _advance_read(dialect: str, categories: tuple[str, ...]) -> Any:
    """``advance``'s read, one statement built once per dialect and kinds of source
    (building it cost as much as running it): the partners' snapshots of today (``ids``,
    ``today``), the vendor's signal currency riding along with them and their reps'
    snapshots of today (``reps.advance``); and the day's rows of the credits and claims
    of those partners (``categories``: ``facts.tagged_parts``, ``partner_ids``, ``since``,
    ``until``), read in the signal currency computed in the statement. One statement, not
    two: a statement is most of a run's cost (a round trip on PostgreSQL, on SQLite a
    crossing to aiosqlite's thread and back). Each row says its part (``_SNAPSHOTS``, or
    the kind of source of a source row); the columns of the other part are null. The JSON
    comes as text, parsed once per partner (a partner's row repeats for each of its reps).
    No row lock: the vendor's signal lock keeps other writers out (``signals.locks``)."""
    currency = currency_expression(bindparam("vendor_id"))
    snapshot_columns: list[Any] = [
        col(SignalSnapshot.currency).label("currency"),
        cast(col(SignalSnapshot.values), Text).label("values"),
        cast(col(SignalSnapshot.basis), Text).label("basis"),
        currency.label("signal_currency"),
        col(SignalRepSnapshot.rep_user_id).label("rep_user_id"),
        col(SignalRepSnapshot.currency).label("rep_currency"),
        cast(col(SignalRepSnapshot.basis), Text).label("rep_basis"),
    ]
    parts = facts.tagged_parts(dialect, categories, currency)
    snapshots = (
        sa_select(
            col(SignalSnapshot.partner_id),
            # A source row's (rep, day, kind, n, amount, margin): nulls, cast (PostgreSQL
            # types a bare null of a UNION's first pair as text).
            *([cast(null(), t) for t in _SOURCE_TYPES] if parts else []),
            literal(_SNAPSHOTS, String).label("part"),
            *snapshot_columns,
        )
        .select_from(
            join(
                SignalSnapshot, SignalRepSnapshot,
                and_(
                    col(SignalRepSnapshot.partner_id) == col(SignalSnapshot.partner_id),
                    col(SignalRepSnapshot.day) == col(SignalSnapshot.day),
                ),
                isouter=True,
            )
        )
        .where(
            col(SignalSnapshot.vendor_id) == bindparam("vendor_id"),
            col(SignalSnapshot.partner_id).in_(bindparam("ids", expanding=True)),
            col(SignalSnapshot.day) == bindparam("today"),
        )
    )  # fmt: skip
    if not parts:
        return snapshots
    # The source parts first (a UNION's rows are typed as its first part's): they read as
    # ``facts.compute_both`` reads them.
    padding = [cast(null(), c.type) for c in snapshot_columns]
    sources = [
        part.add_columns(literal(category, String).label("part"), *padding)
        for category, part in parts
    ]
    return union_all(*sources, snapshots)


async def advance(
    session: AsyncSession,
    clock: Clock,
    vendor_id: uuid.UUID,
    touched: dict[uuid.UUID, set[str]],
) -> tuple[list[SignalsChanged], set[uuid.UUID]]:
    """The handlers' way for events of today: recompute today's facts of the kinds of source
    the events tell of (``facts.CATEGORIES``) for the partners they name, and move today's
    snapshot by them alone: its basis (the days before today, closed) is kept, so no window
    is read again. A recompute, not an increment: an event handled twice writes the same
    row. Returns the changes and the partners it could not advance (no snapshot of today
    with a basis in the signal currency): the caller refreshes those in full."""
    await locks.hold(session, [vendor_id])
    today = clock.now().date()
    ids = sorted(touched)
    found: dict[uuid.UUID, tuple[Values, compute.Basis, Fact]] = {}
    rep_snapshots: dict[reps.RepKey, tuple[str, Any]] = {}
    seen: set[uuid.UUID] = set()
    currency = ""
    # The kinds of source of every partner named: the read comes before it is known which
    # can be advanced (their source rows are kept, of their kinds alone, below).
    kinds = tuple(c for c in (facts.CREDITS, facts.CLAIMS) if any(c in t for t in touched.values()))
    source_rows: list[tuple[str, tuple[Any, ...]]] = []
    rows = await execute_core(
        session,
        _advance_read(session.get_bind().dialect.name, kinds),
        {
            "vendor_id": vendor_id, "ids": ids, "partner_ids": ids, "today": today,
            "since": facts.start_of(today), "until": facts.start_of(today + timedelta(days=1)),
        },
    )  # fmt: skip
    for (
        partner_id,
        *source,
        part,
        currency_,
        values,
        stored,
        signal_currency,
        rep_id,
        rep_currency,
        rep_basis,
    ) in rows:
        if part != _SNAPSHOTS:  # (its snapshot columns are null, in whatever order)
            source_rows.append((part, (partner_id, *source)))
            continue
        currency = signal_currency
        if rep_id is not None:
            rep_snapshots[(partner_id, rep_id)] = (rep_currency, rep_basis)
        if partner_id in seen:
            continue
        seen.add(partner_id)
        stored = _json(stored)
        if currency_ != currency or not stored:
            continue
        basis = compute.Basis.from_json(stored, facts.COUNTERS)
        before = compute.stored_today(stored, today, facts.COUNTERS)
        if basis is not None and before is not None:
            found[partner_id] = (complete(_json(values)), basis, before)
    rest = set(ids) - set(found)
    if not found:
        return [], rest
    categories = set().union(*(touched[p] for p in found))
    # The partners' facts of today and their reps' (``signals.reps``): the source rows
    # read above of these partners and of their kinds of source (as ``facts.compute_both``
    # reads them), and the deals' rows read now if asked for.
    recomputed, rep_facts = await facts.compute_both_from(
        session, vendor_id, currency,
        [row for part, row in source_rows if part in categories and row[0] in found],
        partner_ids=list(found), first=today, last=today, categories=categories,
    )  # fmt: skip
    columns = [c for category in sorted(categories) for c in facts.CATEGORIES[category]]
    if facts.DEALS in categories:
        columns.append("response_seconds")
    now = clock.now()
    changes: list[SignalsChanged] = []
    fact_rows: list[dict[str, Any]] = []
    emptied: list[uuid.UUID] = []
    snapshot_rows: list[dict[str, Any]] = []
    for partner_id, (old_values, basis, before) in sorted(found.items()):
        day_facts = recomputed.get((partner_id, today), facts.DayFacts())
        counts = dict(before.counts)
        for category in categories:
            for name in facts.CATEGORIES[category]:
                counts[name] = day_facts.counts[name]
        seconds = (
            tuple(sorted(day_facts.response_seconds))
            if facts.DEALS in categories
            else before.response_seconds
        )
        after = Fact(today, counts, seconds)
        if after == before:
            continue
        if not seconds and not any(counts.values()):
            emptied.append(partner_id)
        else:
            fact_rows.append(
                {
                    "partner_id": partner_id, "day": today, "vendor_id": vendor_id,
                    "currency": currency, **counts, "response_seconds": list(seconds),
                }
            )  # fmt: skip
        values = compute.values_of(today, basis, after, _extras_of(old_values))
        names = [name for name, value in values.items() if old_values.get(name, ...) != value]
        if names:
            changes.append(SignalsChanged(vendor_id, partner_id, today, names))
        snapshot_rows.append(
            {
                "partner_id": partner_id, "day": today, "vendor_id": vendor_id,
                "currency": currency, "values": values, "basis": basis.to_json(after),
                "computed_at": now,
            }
        )  # fmt: skip
    # The run's writes, the reps' with them: one statement on PostgreSQL (``store.Writes``).
    writes = Writes(session)
    # Only the recomputed columns of a fact row are set: the others keep what their own
    # sources gave.
    writes.upsert(SignalFact, ["partner_id", "day"], fact_rows, ["currency", *columns])
    if emptied:
        await writes.flush()
        await session.execute(
            delete(SignalFact).where(
                col(SignalFact.partner_id).in_(emptied), col(SignalFact.day) == today
            )
        )
    writes.upsert(
        SignalSnapshot, ["partner_id", "day"], snapshot_rows,
        ["currency", "values", "basis", "computed_at"],
    )  # fmt: skip
    # ``SignalsChanged``, in the snapshots' transaction, at their instant.
    writes.insert(
        OutboxEvent.__table__,  # type: ignore[attr-defined]
        event_rows(
            clock,
            [(vendor_id, c.type, c.partner_id, c.to_payload()) for c in changes],
            at=now,
        ),
    )
    # The reps of the partners whose day moved: today's rep facts and snapshots.
    moved = {row["partner_id"]: categories for row in snapshot_rows}
    await reps.advance(session, clock, vendor_id, currency, moved, rep_facts, rep_snapshots, writes)
    await writes.flush()
    return changes, rest


def _json(value: Any) -> Any:
    """A JSON column read as text (``type_coerce(..., String)``), parsed; None stays None."""
    return jsonio.loads(value) if isinstance(value, str | bytes) else value


def _extras_of(values: Values) -> Extras:
    """What a snapshot read from outside the facts, as it stored it (events of sales, claims
    and deals do not move it; the activity flush and forecast events re-take in full)."""
    accuracy = values.get("forecast_accuracy")
    return Extras(
        active_users_7d=int(values.get("active_users_7d") or 0),
        active_users_30d=int(values.get("active_users_30d") or 0),
        forecast_accuracy=float(accuracy) if accuracy is not None else None,
        concentration_alert_open=bool(values.get("concentration_alert_open")),
    )
