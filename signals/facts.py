"""Daily facts from the source tables: for a set of partners (or all of a vendor's) and a
range of days, what happened each day, recomputed from the rows that record it.

Both the outbox handlers and the rebuild call ``recompute``: the handlers for the partners
and days a run of events touched, the rebuild for everything. Recomputing a partner-day
from its sources (instead of adding each event's delta) makes a handler idempotent by
construction — an event handled twice, or a run re-dispatched after a crash, writes the
same row — and makes the rebuild equal to the incremental result by the same code.

Dating: a sale counts on the day earnings credited it (``earning_source.credited_at``), a
reversal likewise, earnings on the day they were booked, a claim on the day of its
decision, a deal on the day of its transition. Every source row is dated when it is
written, so a past day's facts never change after the day (a back-dated sale moves the
earnings tier's standing, which uses the sale date, but not yesterday's signals).
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    String,
    and_,
    bindparam,
    delete,
    func,
    literal_column,
    type_coerce,
    union_all,
)
from sqlalchemy import select as sa_select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from deal_registration.registrations.models import DealRegistration, DealStatus, DealTransition
from deal_registration.sales.models import DecisionAction, RiskFlag, SaleClaim, SaleClaimDecision
from earnings.models import CreditedSource, EarningEntry, SourceType
from infra.db import execute_core
from signals.models import SignalFact

OPEN_DEAL_STATUSES = frozenset({DealStatus.SUBMITTED, DealStatus.UNDER_REVIEW, DealStatus.APPROVED})
_APPROVALS = (DecisionAction.APPROVED, DecisionAction.AUTO_APPROVED)
_REJECTIONS = (DecisionAction.REJECTED, DecisionAction.AUTO_REJECTED)
# The kinds of row a union reads besides decision actions and source types.
_EARNINGS, _FLAG = "EARNINGS", "RISK_FLAG"

# Every counter of a fact row (the columns ``recompute`` fills, besides the lists).
COUNTERS = (
    "sales", "sales_minor", "reversals", "reversed_minor", "margin_minor", "earnings_minor",
    "claims_submitted", "claims_approved", "claims_rejected", "risk_flags",
    "deals_registered", "deals_won", "deals_lost", "pipeline_delta_minor",
)  # fmt: skip


# The counters each kind of source fills: what an event of that kind can change (the deals'
# also fill ``response_seconds``).
CREDITS, CLAIMS, DEALS = "credits", "claims", "deals"
CATEGORIES: dict[str, tuple[str, ...]] = {
    CREDITS: (
        "sales", "sales_minor", "reversals", "reversed_minor", "margin_minor", "earnings_minor",
    ),
    CLAIMS: ("claims_submitted", "claims_approved", "claims_rejected", "risk_flags"),
    DEALS: ("deals_registered", "deals_won", "deals_lost", "pipeline_delta_minor"),
}  # fmt: skip
assert sorted(c for cs in CATEGORIES.values() for c in cs) == sorted(COUNTERS)

# The counters kept per rep (``signal_rep_fact``): what the rep signals read.
REP_COUNTERS = (
    "sales", "sales_minor", "reversals", "reversed_minor", "claims_submitted",
    "deals_registered", "deals_won", "deals_lost", "pipeline_delta_minor",
)  # fmt: skip


@dataclass
class DayFacts:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    response_seconds: list[int] = field(default_factory=list)

    def empty(self) -> bool:
        return not self.response_seconds and not any(self.counts.values())


Key = tuple[uuid.UUID, date]
# A rep's day: (partner, rep user, day) — ``compute(..., reps=True)``.
RepKey = tuple[uuid.UUID, uuid.UUID, date]


def start_of(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def day_expression(dialect: str, column: Any) -> ColumnElement[Any]:
    """The UTC calendar day of an instant column, in SQL, for the dialect's name (grouping
    by day in the database keeps a rebuild over a million ledger rows from reading them
    into Python)."""
    if dialect == "postgresql":
        return func.date(func.timezone("UTC", column))
    return func.date(column)


def as_day(value: Any) -> date:
    if isinstance(value, datetime):
        return value.astimezone(UTC).date() if value.tzinfo else value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _in(column: Any, partner_ids: Collection[uuid.UUID] | None) -> ColumnElement[bool]:
    return col(column).in_(list(partner_ids)) if partner_ids is not None else and_(True)


# The bound parameters of the statements built once (``_rows_statement``).
_VENDOR: BindParameter[Any] = bindparam("vendor_id")
_CURRENCY: BindParameter[Any] = bindparam("currency")
_SINCE: BindParameter[Any] = bindparam("since")
_UNTIL: BindParameter[Any] = bindparam("until")


def _in_partners(column: Any, every_partner: bool) -> ColumnElement[bool]:
    """The partners filter of a statement built once: the ``partner_ids`` list (an
    expanding parameter), or none for every partner of the vendor."""
    return (
        and_(True) if every_partner else col(column).in_(bindparam("partner_ids", expanding=True))
    )


async def compute(
    session: AsyncSession,
    vendor_id: uuid.UUID,
    currency: str,
    *,
    partner_ids: Collection[uuid.UUID] | None,
    first: date,
    last: date,
    categories: Collection[str] = tuple(CATEGORIES),
) -> dict[Key, DayFacts]:
    """The facts of each partner-day in [first, last] that has any (money only in
    ``currency``: the vendor's signal currency; other currencies are not converted). With
    ``categories``, only those kinds of source are read (the other counters stay 0)."""
    return await _compute(
        session,
        vendor_id,
        currency,
        partner_ids,
        first,
        last,
        categories,
        reps=False,
        only_reps=False,
    )


async def compute_reps(
    session: AsyncSession,
    vendor_id: uuid.UUID,
    currency: str,
    *,
    partner_ids: Collection[uuid.UUID] | None,
    first: date,
    last: date,
    categories: Collection[str] = tuple(CATEGORIES),
) -> dict[RepKey, DayFacts]:
    """The same facts per rep: the same source rows grouped by the rep they name (a sale's
    ``earning_source.rep_user_id``, a claim's ``sale_claim.rep_user_id``, a deal's
    ``deal_registration.registered_by_id``); rows naming no rep are left out. Earnings,
    margins, claim decisions and risk flags are not kept per rep (``REP_COUNTERS``)."""
    return await _compute(
        session,
        vendor_id,
        currency,
        partner_ids,
        first,
        last,
        categories,
        reps=True,
        only_reps=True,
    )


async def _compute(
    session: AsyncSession,
    vendor_id: uuid.UUID,
    currency: str,
    partner_ids: Collection[uuid.UUID] | None,
    first: date,
    last: date,
    categories: Collection[str],
    *,
    reps: bool,
    only_reps: bool,
) -> dict[Any, DayFacts]:
    """Grouped by partner and day, or with ``reps`` by partner, rep and day (``only_reps``:
    only the rows a rep counter reads; else every row, those of no rep under None)."""
    since, until = start_of(first), start_of(last + timedelta(days=1))
    out: dict[Any, DayFacts] = defaultdict(DayFacts)
    # Credits and claims rows share a shape (partner, rep, day, kind, n, amount, margin):
    # one statement for both (a handler run pays per statement; an approval moves both),
    # built once per shape and run past the ORM (``execute_core``).
    statement = _rows_statement(
        session.get_bind().dialect.name,
        tuple(c for c in (CREDITS, CLAIMS) if c in categories),
        reps,
        only_reps,
        every_partner=partner_ids is None,
    )
    if statement is not None:
        rows = await execute_core(
            session,
            statement,
            {
                "vendor_id": vendor_id, "currency": currency, "since": since, "until": until,
                "partner_ids": list(partner_ids or ()),
            },
        )  # fmt: skip
        for partner_id, rep_id, d, kind, n, amount, margin in rows:
            _count(out[_key(partner_id, rep_id, d, reps)].counts, kind, n, amount, margin)
    if DEALS in categories:
        await _deals(session, vendor_id, currency, partner_ids, since, until, out, reps, only_reps)
    if reps and not only_reps:
        return out
    if reps:
        return {
            key: _only(facts, REP_COUNTERS)
            for key, facts in out.items()
            if key[1] is not None and not _only(facts, REP_COUNTERS).empty()
        }
    return {key: facts for key, facts in out.items() if not facts.empty()}


async def compute_both(
    session: AsyncSession,
    vendor_id: uuid.UUID,
    currency: str,
    *,
    partner_ids: Collection[uuid.UUID],
    first: date,
    last: date,
    categories: Collection[str],
) -> tuple[dict[Key, DayFacts], dict[RepKey, DayFacts]]:
    """``compute`` and ``compute_reps`` from the same statements (a handler run pays per
    statement): the source rows grouped by rep as well, summed per partner."""
    grouped = await _compute(
        session, vendor_id, currency, partner_ids, first, last, categories,
        reps=True, only_reps=False,
    )  # fmt: skip
    return _both(grouped)


def tagged_parts(dialect: str, categories: Collection[str], currency: Any) -> list[tuple[str, Any]]:
    """``compute_both``'s reads of the credits' and claims' rows (of ``categories``: each
    part a SELECT in the row shape (partner, rep, day, kind, n, amount, margin), told which
    kind of source it reads), with their bound parameters (``vendor_id``, ``since``,
    ``until``, ``partner_ids``) and the currency an SQL expression instead of a parameter:
    for a caller that reads them in a statement of its own with other rows
    (``maintenance.advance``), and hands the rows to ``compute_both_from``."""
    parts: list[tuple[str, Any]] = []
    if CREDITS in categories:
        parts += [(CREDITS, p) for p in _credits(dialect, True, False, False, currency)]
    if CLAIMS in categories:
        parts += [(CLAIMS, p) for p in _claims(dialect, True, False, False)]
    return parts


async def compute_both_from(
    session: AsyncSession,
    vendor_id: uuid.UUID,
    currency: str,
    rows: Iterable[tuple[Any, ...]],
    *,
    partner_ids: Collection[uuid.UUID],
    first: date,
    last: date,
    categories: Collection[str],
) -> tuple[dict[Key, DayFacts], dict[RepKey, DayFacts]]:
    """``compute_both`` with the credits' and claims' rows read already (``tagged_parts``,
    of these partners, days and categories): the deals' rows, when asked for, are read
    here."""
    since, until = start_of(first), start_of(last + timedelta(days=1))
    out: dict[Any, DayFacts] = defaultdict(DayFacts)
    for partner_id, rep_id, d, kind, n, amount, margin in rows:
        _count(out[_key(partner_id, rep_id, d, True)].counts, kind, n, amount, margin)
    if DEALS in categories:
        await _deals(session, vendor_id, currency, partner_ids, since, until, out, True, False)
    return _both(out)


def _both(
    grouped: dict[Any, DayFacts],
) -> tuple[dict[Key, DayFacts], dict[RepKey, DayFacts]]:
    """Facts grouped by partner, rep and day: summed per partner, and per rep."""
    partners: dict[Key, DayFacts] = defaultdict(DayFacts)
    reps: dict[RepKey, DayFacts] = {}
    for (partner_id, rep_id, day), found in grouped.items():
        total = partners[(partner_id, day)]
        for name, n in found.counts.items():
            total.counts[name] += n
        total.response_seconds += found.response_seconds
        if rep_id is not None:
            mine = _only(found, REP_COUNTERS)
            if not mine.empty():
                reps[(partner_id, rep_id, day)] = mine
    return {k: f for k, f in partners.items() if not f.empty()}, reps


def _only(facts: DayFacts, counters: Collection[str]) -> DayFacts:
    return DayFacts({c: facts.counts[c] for c in counters}, [])


def _key(partner_id: uuid.UUID, rep_id: Any, day: Any, reps: bool) -> tuple[Any, ...]:
    return (partner_id, rep_id, as_day(day)) if reps else (partner_id, as_day(day))


def _rep(column: Any, reps: bool) -> Any:
    """The rep column grouped by (for rep facts), else a constant null."""
    return col(column) if reps else literal_column("NULL")


@cache
def _rows_statement(
    dialect: str, categories: tuple[str, ...], reps: bool, only_reps: bool, every_partner: bool
) -> Any | None:
    """The statement reading the credits' and claims' rows (``categories``), built once per
    shape with bound parameters (``vendor_id``, ``currency``, ``since``, ``until`` and,
    unless ``every_partner``, ``partner_ids``): building it was a third of a handler run's
    CPU. None when neither kind is asked for."""
    parts: list[Any] = []
    if CREDITS in categories:
        parts += _credits(dialect, reps, only_reps, every_partner)
    if CLAIMS in categories:
        parts += _claims(dialect, reps, only_reps, every_partner)
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else union_all(*parts)


def _credits(
    dialect: str, reps: bool, only_reps: bool, every_partner: bool, currency: Any = _CURRENCY
) -> list[Any]:
    # Sales and reversals by source, earnings by ledger entry: one statement (a handler run
    # pays per statement), the kinds told apart by ``kind``. Per rep, no earnings. The money
    # in ``currency``: the ``currency`` parameter, or an SQL expression (``tagged_parts``).
    day = day_expression(dialect, CreditedSource.credited_at)
    kind = type_coerce(col(CreditedSource.source_type), String)
    rep = _rep(CreditedSource.rep_user_id, reps)
    sources = (
        sa_select(
            col(CreditedSource.partner_id), rep.label("rep"), day.label("day"),
            kind.label("kind"), func.count().label("n"),
            func.sum(col(CreditedSource.revenue_minor)).label("amount"),
            func.sum(col(CreditedSource.margin_minor)).label("margin"),
        )
        .where(
            col(CreditedSource.vendor_id) == _VENDOR, col(CreditedSource.currency) == currency,
            _in_partners(CreditedSource.partner_id, every_partner),
            col(CreditedSource.credited_at) >= _SINCE, col(CreditedSource.credited_at) < _UNTIL,
            col(CreditedSource.source_type).in_(
                [SourceType.SALE_APPROVED, SourceType.SALE_REVERSED]
            ),
        )
        .group_by(
            col(CreditedSource.partner_id), *([rep] if reps else []), day,
            col(CreditedSource.source_type),
        )
    )  # fmt: skip
    day = day_expression(dialect, EarningEntry.booked_at)
    entries = (
        sa_select(
            col(EarningEntry.partner_id), literal_column("NULL"), day.label("day"),
            literal_column(f"'{_EARNINGS}'", String).label("kind"), literal_column("0"),
            func.sum(col(EarningEntry.amount_minor)), literal_column("0"),
        )
        .where(
            col(EarningEntry.vendor_id) == _VENDOR, col(EarningEntry.currency) == currency,
            _in_partners(EarningEntry.partner_id, every_partner),
            col(EarningEntry.booked_at) >= _SINCE, col(EarningEntry.booked_at) < _UNTIL,
        )
        .group_by(col(EarningEntry.partner_id), day)
    )  # fmt: skip
    return [sources] if only_reps else [sources, entries]


def _claims(dialect: str, reps: bool, only_reps: bool, every_partner: bool) -> list[Any]:
    """Decisions by action and risk flags, counted per partner (and rep) and day, in the
    credits' row shape (no amounts)."""
    rep = _rep(SaleClaim.rep_user_id, reps)
    decided = day_expression(dialect, SaleClaimDecision.decided_at)
    decisions: Any = (
        sa_select(
            col(SaleClaim.partner_id), rep.label("rep"), decided.label("day"),
            type_coerce(col(SaleClaimDecision.action), String).label("kind"),
            func.count().label("n"), literal_column("0"), literal_column("0"),
        )
        .join(SaleClaim, col(SaleClaim.id) == SaleClaimDecision.claim_id)
        .where(
            # The partners' decisions by their own index (partner, instant), not through
            # the vendor's claims.
            col(SaleClaim.vendor_id) == _VENDOR,
            _in_partners(SaleClaimDecision.partner_id, every_partner),
            col(SaleClaimDecision.decided_at) >= _SINCE,
            col(SaleClaimDecision.decided_at) < _UNTIL,
        )
        .group_by(
            col(SaleClaim.partner_id), *([rep] if reps else []), decided,
            col(SaleClaimDecision.action),
        )
    )  # fmt: skip
    if only_reps:  # per rep, only submissions count
        return [decisions.where(col(SaleClaimDecision.action) == DecisionAction.SUBMITTED)]
    flagged = day_expression(dialect, RiskFlag.created_at)
    flags = (
        sa_select(
            col(SaleClaim.partner_id), rep, flagged, literal_column(f"'{_FLAG}'", String),
            func.count(), literal_column("0"), literal_column("0"),
        )
        .join(SaleClaim, col(SaleClaim.id) == RiskFlag.claim_id)
        .where(
            col(RiskFlag.vendor_id) == _VENDOR,
            _in_partners(SaleClaim.partner_id, every_partner),
            col(RiskFlag.created_at) >= _SINCE, col(RiskFlag.created_at) < _UNTIL,
        )
        .group_by(col(SaleClaim.partner_id), *([rep] if reps else []), flagged)
    )  # fmt: skip
    return [decisions, flags]


def _count(counts: dict[str, int], kind: str, n: int, amount: Any, margin: Any) -> None:
    """Add one grouped row of credits or claims (told apart by ``kind``) to a day's counts."""
    if kind == _EARNINGS:
        counts["earnings_minor"] += int(amount or 0)
    elif kind == SourceType.SALE_APPROVED:
        counts["sales"] += int(n)
        counts["sales_minor"] += int(amount or 0)
        counts["margin_minor"] += int(margin or 0)
    elif kind == SourceType.SALE_REVERSED:
        counts["reversals"] += int(n)
        counts["reversed_minor"] -= int(amount or 0)
        counts["margin_minor"] += int(margin or 0)
    elif kind == _FLAG:
        counts["risk_flags"] += int(n)
    elif kind == DecisionAction.SUBMITTED:
        counts["claims_submitted"] += int(n)
    elif kind in _APPROVALS:
        counts["claims_approved"] += int(n)
    elif kind in _REJECTIONS:
        counts["claims_rejected"] += int(n)


async def _deals(
    session: AsyncSession,
    vendor_id: uuid.UUID,
    currency: str,
    partner_ids: Collection[uuid.UUID] | None,
    since: datetime,
    until: datetime,
    out: dict[Any, DayFacts],
    reps: bool = False,
    only_reps: bool = False,
) -> None:
    transitions = await session.execute(
        sa_select(
            col(DealRegistration.partner_id), _rep(DealRegistration.registered_by_id, reps),
            col(DealRegistration.currency),
            col(DealRegistration.estimated_value_minor), col(DealRegistration.submitted_at),
            col(DealTransition.from_status), col(DealTransition.to_status), col(DealTransition.at),
        )
        .join(DealRegistration, col(DealRegistration.id) == DealTransition.registration_id)
        .where(
            col(DealTransition.vendor_id) == vendor_id,
            _in(DealRegistration.partner_id, partner_ids),
            col(DealTransition.at) >= since, col(DealTransition.at) < until,
        )
    )  # fmt: skip
    for partner_id, rep_id, deal_currency, value, submitted_at, before, after, at in transitions:
        if before == after:
            continue
        facts = out[_key(partner_id, rep_id, at, reps)]
        counts = facts.counts
        if after is DealStatus.SUBMITTED:
            counts["deals_registered"] += 1
        elif after is DealStatus.WON:
            counts["deals_won"] += 1
        elif after is DealStatus.LOST:
            counts["deals_lost"] += 1
        if deal_currency == currency:
            was_open, is_open = before in OPEN_DEAL_STATUSES, after in OPEN_DEAL_STATUSES
            if is_open and not was_open:
                counts["pipeline_delta_minor"] += int(value)
            elif was_open and not is_open:
                counts["pipeline_delta_minor"] -= int(value)
        # The vendor's first answer to a submission (not the partner withdrawing it).
        if (
            before is DealStatus.SUBMITTED
            and after is not DealStatus.WITHDRAWN
            and submitted_at is not None
        ):
            facts.response_seconds.append(max(0, int((at - submitted_at).total_seconds())))


async def replace(
    session: AsyncSession,
    vendor_id: uuid.UUID,
    currency: str,
    facts: dict[Key, DayFacts],
    *,
    partner_ids: Collection[uuid.UUID] | None,
    first: date,
    last: date,
) -> None:
    """Replace the stored facts of the partners (all of the vendor's: None) over [first,
    last] with ``facts``."""
    statement = delete(SignalFact).where(
        col(SignalFact.vendor_id) == vendor_id,
        col(SignalFact.day) >= first,
        col(SignalFact.day) <= last,
    )
    if partner_ids is not None:
        statement = statement.where(col(SignalFact.partner_id).in_(list(partner_ids)))
    await session.exec(statement)
    rows = [
        {
            "partner_id": partner_id, "day": day, "vendor_id": vendor_id, "currency": currency,
            **f.counts, "response_seconds": sorted(f.response_seconds),
        }
        for (partner_id, day), f in sorted(facts.items())
    ]  # fmt: skip
    if len(rows) >= COPY_ABOVE and session.get_bind().dialect.name == "postgresql":
        await _copy(session, rows)
        return
    table = SignalFact.__table__  # type: ignore[attr-defined]
    for i in range(0, len(rows), 5000):
        await session.execute(table.insert(), rows[i : i + 5000])


# A rebuild writes hundreds of thousands of fact rows: on PostgreSQL through COPY, several
# times faster than batched INSERTs.
COPY_ABOVE = 20_000


async def _copy(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    connection = await (await session.connection()).get_raw_connection()
    driver = connection.driver_connection
    assert driver is not None
    columns = list(rows[0])
    await driver.copy_records_to_table(
        SignalFact.__tablename__,
        records=[
            tuple(json.dumps(r[c]) if c == "response_seconds" else r[c] for c in columns)
            for r in rows
        ],
        columns=columns,
    )
