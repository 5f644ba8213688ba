"""CSV exports for finance reconciliation: a small registry of kinds (one ``ExportKind`` a
kind: its columns, the readable statement its rows come from, and how a row becomes cells),
streamed a keyset page at a time so an export of any size never sits in memory.

Who may export a kind is the ``EXPORTS`` policy table; which rows, the kind's readable
statement (the same access predicate as GraphQL). Lines are written by ``infra.csv_cells``:
RFC 4180, and every text cell that starts with ``= + - @``, a tab or a carriage return gets
a leading apostrophe so that a spreadsheet never runs it as a formula (OWASP's CSV-injection
advice); numbers are plain integers in minor units (with the decimal amount beside them, a
``Numeral``), times ISO 8601 UTC.
Adding a kind is one ``ExportKind`` in ``KINDS`` (and its row in the policy table)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from earnings.models import EarningEntry, PayoutStatement
from earnings.repository import readable_entries, readable_statements
from forecasts.errors import ExportErrorCode
from forecasts.models import PartnerForecast
from forecasts.policy import EXPORTS, ExportOp
from forecasts.repository import readable_forecasts
from infra.audit import AuditEntry
from infra.csv_cells import Cell, Numeral, csv_line
from infra.money import to_decimal_string
from infra.ranges import check_order
from partners.audit_log import readable_audit_entries
from partners.models import Partner
from partners.roles import Principal
from subscriptions.events import arr_of
from subscriptions.models import Subscription
from subscriptions.repository import readable_subscriptions

PAGE = 1_000


def _amount(amount_minor: int, currency: str) -> Numeral:
    return Numeral(to_decimal_string(amount_minor, currency))


def _json(value: object) -> str:
    return "" if value is None else json.dumps(value, sort_keys=True, separators=(",", ":"))


def _at(value: datetime | None) -> str:
    return "" if value is None else value.isoformat()


def _id(value: uuid.UUID | None) -> str:
    return "" if value is None else str(value)


Cells = list[Cell]


@dataclass(frozen=True)
class ExportKind:
    """One export: ``model`` is the table keyed by ``id`` (UUIDv7, so id order is time
    order); ``at`` the time column ``since``/``until`` filter on; ``row`` turns one row and
    its partner's name (when the table names a partner) into the cells of ``columns``."""

    kind: ExportOp
    description: str
    model: Any
    at: Any
    readable: Callable[[Principal], Any]
    columns: tuple[str, ...]
    row: Callable[[Any, str], Cells]
    partner_column: Any | None = None


def _commission(e: EarningEntry, partner: str) -> Cells:
    return [
        str(e.id), _at(e.booked_at), _at(e.effective_at), str(e.partner_id), partner,
        _id(e.rep_user_id), e.kind.value, _id(e.program_id), _id(e.program_version_id),
        e.line_key, e.amount_minor, _amount(e.amount_minor, e.currency),
        e.currency, e.rule, _json(e.inputs), str(e.source_id), str(e.source_event_id),
    ]  # fmt: skip


def _payout(s: PayoutStatement, partner: str) -> Cells:
    return [
        str(s.id), str(s.partner_id), partner, _at(s.period_start), _at(s.period_end),
        s.currency, s.total_minor, _amount(s.total_minor, s.currency), s.entry_count,
        s.status.value, s.paid_reference, s.data_version,
        _at(s.created_at), _at(s.updated_at),
    ]  # fmt: skip


def _forecast(f: PartnerForecast, partner: str) -> Cells:
    return [
        str(f.id), str(f.partner_id), partner, f.quarter, f.currency, f.revision,
        f.commit_minor, _amount(f.commit_minor, f.currency), f.best_case_minor,
        _amount(f.best_case_minor, f.currency), _json(f.lines),
        _at(f.updated_at),
    ]  # fmt: skip


def _subscription(s: Subscription, partner: str) -> Cells:
    return [
        str(s.id), str(s.partner_id), partner, str(s.account_id), s.sku,
        s.region, s.term_months, s.amount_minor,
        _amount(s.amount_minor, s.currency), s.currency,
        arr_of(s.amount_minor, s.term_months), s.status.value, s.renewals, _at(s.starts_at),
        _at(s.term_start), _at(s.ends_at), _at(s.cancelled_at), _at(s.updated_at),
    ]  # fmt: skip


def _audit(e: AuditEntry, _: str) -> Cells:
    return [
        str(e.id), _at(e.at), e.actor, e.action, e.entity_type,
        e.entity_id, _json(e.before), _json(e.after),
        e.reason or "",
    ]  # fmt: skip


KINDS: dict[str, ExportKind] = {
    k.kind.value: k
    for k in (
        ExportKind(
            ExportOp.COMMISSIONS, "Ledger entries (commissions), oldest first.",
            EarningEntry, EarningEntry.booked_at, readable_entries,
            ("id", "booked_at", "effective_at", "partner_id", "partner_name", "rep_user_id",
             "kind", "program_id", "program_version_id", "line_key", "amount_minor", "amount",
             "currency", "rule", "inputs", "source_id", "source_event_id"),
            _commission, EarningEntry.partner_id,
        ),
        ExportKind(
            ExportOp.PAYOUTS, "Monthly payout statements.",
            PayoutStatement, PayoutStatement.created_at, readable_statements,
            ("id", "partner_id", "partner_name", "period_start", "period_end", "currency",
             "total_minor", "total", "entry_count", "status", "paid_reference", "data_version",
             "created_at", "updated_at"),
            _payout, PayoutStatement.partner_id,
        ),
        ExportKind(
            ExportOp.FORECASTS, "Partner forecasts (latest revision of each).",
            PartnerForecast, PartnerForecast.updated_at, readable_forecasts,
            ("id", "partner_id", "partner_name", "quarter", "currency", "revision",
             "commit_minor", "commit", "best_case_minor", "best_case", "lines", "updated_at"),
            _forecast, PartnerForecast.partner_id,
        ),
        ExportKind(
            ExportOp.AUDIT, "The audit log of administrative changes.",
            AuditEntry, AuditEntry.at, readable_audit_entries,
            ("id", "at", "actor", "action", "entity_type", "entity_id", "before", "after",
             "reason"),
            _audit,
        ),
        ExportKind(
            ExportOp.SUBSCRIPTIONS, "Subscriptions as they stand (status, current term, ARR).",
            Subscription, Subscription.updated_at, readable_subscriptions,
            ("id", "partner_id", "partner_name", "account_id", "sku", "region", "term_months",
             "amount_minor", "amount", "currency", "arr_minor", "status", "renewals",
             "starts_at", "term_start", "ends_at", "cancelled_at", "updated_at"),
            _subscription, Subscription.partner_id,
        ),
    )
}  # fmt: skip


def kind_of(name: str) -> ExportKind | None:
    return KINDS.get(name)


def allowed(principal: Principal, kind: ExportKind) -> bool:
    return EXPORTS.allows(principal, kind.kind)


def check_bounds(since: datetime | None, until: datetime | None) -> None:
    """Refuses bounds that select nothing (``until``, exclusive, at or before ``since``):
    a mistyped range is an error, not an empty export. The transports ask before they
    start writing."""
    check_order(ExportErrorCode.INVALID_RANGE, since, until, names=("since", "until"))


async def pages(
    session: AsyncSession,
    principal: Principal,
    kind: ExportKind,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    page: int = PAGE,
) -> AsyncIterator[list[Cells]]:
    """The rows the caller may read, ``page`` at a time in id order (keyset: each page
    starts after the last id of the one before, so memory holds one page)."""
    EXPORTS.require(principal, kind.kind)
    stmt = kind.readable(principal)
    if since is not None:
        stmt = stmt.where(col(kind.at) >= since)
    if until is not None:
        stmt = stmt.where(col(kind.at) < until)
    after: uuid.UUID | None = None
    while True:
        batch = stmt if after is None else stmt.where(col(kind.model.id) > after)
        rows = list(await session.exec(batch.order_by(col(kind.model.id)).limit(page)))
        if not rows:
            return
        names: dict[uuid.UUID, str] = {}
        if kind.partner_column is not None:
            ids = {getattr(r, kind.partner_column.key) for r in rows}
            names = dict(
                (
                    await session.exec(
                        select(Partner.id, Partner.name).where(col(Partner.id).in_(ids))
                    )
                ).all()
            )
        yield [
            kind.row(
                r,
                names.get(getattr(r, kind.partner_column.key), "")
                if kind.partner_column is not None
                else "",
            )
            for r in rows
        ]
        after = rows[-1].id
        if len(rows) < page:
            return


async def stream(
    session: AsyncSession,
    principal: Principal,
    kind: ExportKind,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    page: int = PAGE,
) -> AsyncIterator[str]:
    """The CSV text: the header line, then one chunk per page."""
    EXPORTS.require(principal, kind.kind)
    check_bounds(since, until)
    yield csv_line(kind.columns)
    async for rows in pages(session, principal, kind, since=since, until=until, page=page):
        yield "".join(csv_line(cells) for cells in rows)
