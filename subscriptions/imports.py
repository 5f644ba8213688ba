"""The billing system's CSV of subscription changes: ``channelboard subscriptions import``.

Header ``external_id,subscription,kind,effective_at,amount,currency,term_months`` (the
last three may be empty; ``kind`` is RENEWED, EXPANDED, CONTRACTED or CANCELLED;
``subscription`` is the subscription's id or its global id). Rows apply in file order
under the same rules as the GraphQL mutations (``changes.apply``), so one file may renew
and then expand a subscription.

Idempotent by ``external_id`` (the billing system's id of the change): a row whose id was
already applied, by an earlier import or a mutation, is counted unchanged. All or nothing:
any bad row and nothing is written (``ImportRejected`` carries every bad row's line and
code) unless the caller asked for the good rows only.

The file streams once. Rows are checked and applied in memory in batches; each batch's
change rows and outbox events go to the database in bulk (PostgreSQL: ``COPY`` through
asyncpg; SQLite: executemany) and the subscriptions' new states are merged once at the
end from a staging table. The whole import is the caller's one transaction, so a refusal
rolls every batch back."""

from __future__ import annotations

import base64
import csv
import gc
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

from sqlalchemy import Column, Integer, MetaData, Table, Uuid, any_, bindparam, insert, text
from sqlalchemy import select as sa_select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.ext.asyncio.session import AsyncSession

from infra import imports
from infra.clock import Clock
from infra.db import UTCDateTime, begin_write, wrote
from infra.errors import DomainError
from infra.ids import IdBlock, new_id
from infra.money import parse_decimal
from infra.outbox import OutboxEvent
from infra.outbox_partitions import ordering_key, slot_of
from infra.text import identifier_problem
from partners.audit_log import AuditEntity, log_change
from partners.roles import Principal
from subscriptions import changes
from subscriptions.errors import SubscriptionImportErrorCode
from subscriptions.events import SubscriptionChanged, arr_of, change_json, fixed_json
from subscriptions.models import ChangeKind, ChangeSource, Subscription, SubscriptionChange
from subscriptions.policy import REPORT_OPS, SUBSCRIPTIONS

log = logging.getLogger(__name__)

COLUMNS = ("external_id", "subscription", "kind", "effective_at", "amount", "currency",
           "term_months")  # fmt: skip
REQUIRED_COLUMNS = ("external_id", "subscription", "kind", "effective_at")
KINDS = {k.value: k for k in (ChangeKind.RENEWED, ChangeKind.EXPANDED, ChangeKind.CONTRACTED,
                              ChangeKind.CANCELLED)}  # fmt: skip
_EVENT_TYPES = {kind: "Subscription" + kind.value.capitalize() for kind in KINDS.values()}
BATCH_SIZE = 50_000

_CHANGE_COLUMNS = [
    "id", "vendor_id", "subscription_id", "partner_id", "kind", "source", "external_id",
    "effective_at", "amount_before_minor", "amount_after_minor", "currency", "term_months",
    "term_start", "term_end", "renewal_number", "recorded_at",
]  # fmt: skip
_EVENT_COLUMNS = [
    "id", "vendor_id", "type", "aggregate_id", "partition_slot", "payload", "occurred_at",
    "recorded_at", "attempts",
]  # fmt: skip

_stage_metadata = MetaData()
STAGE = Table(
    "subscription_stage",
    _stage_metadata,
    Column("id", Uuid, nullable=False, primary_key=True),
    Column("amount_minor", Integer, nullable=False),
    Column("term_months", Integer, nullable=False),
    Column("term_start", UTCDateTime, nullable=False),
    Column("ends_at", UTCDateTime, nullable=False),
    Column("renewals", Integer, nullable=False),
    Column("cancelled_at", UTCDateTime, nullable=True),
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DROP",
)
_STAGE_COLUMNS = [c.name for c in STAGE.columns]


class ImportReport(imports.ImportReport[SubscriptionImportErrorCode]):
    """``inserted``: changes applied; ``updated``: subscriptions they changed;
    ``unchanged``: rows whose billing id was applied before."""


ImportRejected = imports.ImportRejected


class _Sub:
    """A subscription as the import needs it: what events carry, and its current state."""

    __slots__ = ("id", "partner_id", "rep_user_id", "account_id", "sku", "region",
                 "starts_at", "state", "changed", "json")  # fmt: skip

    def __init__(self, row: Any) -> None:
        (self.id, self.partner_id, self.rep_user_id, self.account_id, self.sku, self.region,
         self.starts_at) = row[:7]  # fmt: skip
        self.state = changes.State(
            currency=row[7], amount_minor=row[8], term_months=row[9], starts_at=row[6],
            term_start=row[10], ends_at=row[11], renewals=row[12], cancelled_at=row[13],
        )  # fmt: skip
        self.changed = False
        self.json = ""  # its payload members (events.fixed_json), built at its first change


@dataclass(slots=True)
class _Row:
    line: int
    external_id: str
    subscription_id: uuid.UUID | None
    kind: ChangeKind
    effective_at: datetime
    amount: str
    currency: str
    term_months: int | None


_IDS: dict[str, uuid.UUID | None] = {}


def _subscription_id(raw: str) -> uuid.UUID | None:
    """Memoised (a billing file names each subscription several times); bounded."""
    found = _IDS.get(raw, False)
    if found is not False:
        return found  # type: ignore[return-value]
    value = _parse_subscription_id(raw)
    if len(_IDS) >= 1_000_000:
        _IDS.clear()
    _IDS[raw] = value
    return value


def _parse_subscription_id(raw: str) -> uuid.UUID | None:
    raw = raw.strip()
    try:
        return uuid.UUID(raw)
    except ValueError:
        pass
    try:
        kind, _, value = base64.b64decode(raw, validate=True).decode().partition(":")
        return uuid.UUID(value) if kind == "CustomerSubscription" else None
    except ValueError:
        return None


async def import_changes(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    source: IO[bytes],
    filename: str = "",
    good_rows_only: bool = False,
    progress: Callable[[int], None] | None = None,
    batch_size: int = BATCH_SIZE,
) -> ImportReport:
    """Apply a billing CSV to the caller's vendor's subscriptions: whoever may report every
    kind of change (vendor admins and finance; the command runs as the vendor's admin)."""
    for op in REPORT_OPS.values():
        SUBSCRIPTIONS.require(principal, op)
    started = time.perf_counter()
    await begin_write(session)
    now = clock.now()
    vendor_id = principal.vendor_id
    text_stream = imports.Source(source, progress).text(buffer_size=1 << 20)
    rows = csv.reader(text_stream)
    report = ImportReport()
    connection = await session.connection()
    postgres = connection.dialect.name == "postgresql"
    importer = _Importer(connection, postgres, vendor_id, now, report)
    # The import holds every subscription it touched and every billing id it saw; the
    # cyclic collector would rescan them all, again and again, while nothing it allocates
    # forms a cycle: pause it for the import.
    collecting = gc.isenabled()
    gc.disable()
    try:
        header = next(rows, None)
        if header is None:
            raise DomainError(SubscriptionImportErrorCode.EMPTY_FILE, "The file is empty.", "file")
        columns = _columns(header)
        instants = imports.Instants()
        batch: list[_Row] = []
        for line, raw in _lines(rows):
            report.rows += 1
            row = _check_row(raw, line, columns, instants, report)
            if row is not None:
                batch.append(row)
                if len(batch) >= batch_size:
                    await importer.apply(batch)
                    batch = []
        if batch:
            await importer.apply(batch)
    except UnicodeDecodeError as exc:
        raise DomainError(
            SubscriptionImportErrorCode.BAD_ENCODING,
            f"The file is not UTF-8 text (near line {report.rows + 2}).", "file",
        ) from exc  # fmt: skip
    except csv.Error as exc:
        raise DomainError(
            SubscriptionImportErrorCode.MALFORMED_CSV,
            f"Line {rows.line_num}: not valid CSV ({exc}).", "file",
        ) from exc  # fmt: skip
    finally:
        if collecting:
            gc.enable()
    if report.rows == 0:
        raise DomainError(SubscriptionImportErrorCode.EMPTY_FILE, "The file has no rows.", "file")
    report.errors.sort(key=lambda e: e.line)
    if report.rejected and not good_rows_only:
        raise ImportRejected(SubscriptionImportErrorCode.ROWS_REJECTED, report)
    applied_at = time.perf_counter()
    report.updated = await importer.merge()
    for table in (Subscription.__tablename__, SubscriptionChange.__tablename__):
        wrote(session, table)
    log.info(
        "subscription import: %d rows checked and applied in %.1fs, merged in %.1fs",
        report.rows, applied_at - started, time.perf_counter() - applied_at,
    )  # fmt: skip
    await log_change(
        session, principal, clock, action="subscription_import.applied",
        entity_type=AuditEntity.SUBSCRIPTION_IMPORT, entity_id=new_id(), before=None,
        after={"filename": filename[:255], "rows": report.rows, "changes": report.inserted,
               "subscriptions": report.updated, "unchanged": report.unchanged,
               "rejected": report.rejected},
    )  # fmt: skip
    report.applied = True
    return report


def _columns(header: list[str]) -> dict[str, int]:
    names = [h.strip().lower() for h in header]
    if (
        len(set(names)) != len(names)
        or not set(REQUIRED_COLUMNS) <= set(names)
        or not set(names) <= set(COLUMNS)
    ):
        raise DomainError(
            SubscriptionImportErrorCode.WRONG_HEADER,
            f"Line 1 must be the header '{','.join(COLUMNS)}' (amount, currency and "
            f"term_months may be left out); found '{','.join(header)[:200]}'.",
            "file",
        )
    return {name: index for index, name in enumerate(names)}


def _lines(rows: Any) -> Iterable[tuple[int, list[str]]]:
    for row in rows:
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        yield rows.line_num, row


def _check_row(
    raw: list[str],
    line: int,
    columns: dict[str, int],
    instants: imports.Instants,
    report: ImportReport,
) -> _Row | None:
    code = SubscriptionImportErrorCode
    if len(raw) != len(columns):
        report.add_error(
            line, code.WRONG_COLUMN_COUNT, f"Expected {len(columns)} columns, found {len(raw)}."
        )
        return None
    external_id = raw[columns["external_id"]].strip()
    if not external_id or len(external_id) > 100:
        report.add_error(line, code.REQUIRED, "external_id is the billing id (1-100 characters).")
        return None
    if problem := identifier_problem(external_id):
        report.add_error(line, code.INVALID_CHARACTERS, f"external_id: {problem}")
        return None
    kind = KINDS.get(raw[columns["kind"]].strip().upper())
    if kind is None:
        report.add_error(
            line, code.INVALID_KIND, "kind is RENEWED, EXPANDED, CONTRACTED or CANCELLED."
        )
        return None
    effective_at = instants.parse(raw[columns["effective_at"]])
    if effective_at is None:
        report.add_error(
            line, code.INVALID_DATE, "effective_at is an ISO 8601 date or instant, e.g. 2026-03-31."
        )
        return None
    index = columns.get("term_months")
    term = raw[index].strip() if index is not None else ""
    term_months = None
    if term:
        if not term.isdigit() or not 1 <= int(term) <= 120:
            report.add_error(line, code.INVALID_TERM, "term_months is 1 to 120.")
            return None
        term_months = int(term)
    index = columns.get("amount")
    amount = raw[index].strip() if index is not None else ""
    index = columns.get("currency")
    currency = raw[index].strip().upper() if index is not None else ""
    return _Row(
        line, external_id, _subscription_id(raw[columns["subscription"]]), kind, effective_at,
        amount, currency, term_months,
    )  # fmt: skip


class _Importer:
    def __init__(
        self,
        connection: AsyncConnection,
        postgres: bool,
        vendor_id: uuid.UUID,
        now: datetime,
        report: ImportReport,
    ) -> None:
        self.connection, self.postgres = connection, postgres
        self.vendor_id, self.now, self.report = vendor_id, now, report
        self.subs: dict[uuid.UUID, _Sub] = {}
        self.seen: dict[str, int] = {}  # external id -> its line in this file
        self.ids = IdBlock()

    async def apply(self, batch: list[_Row]) -> None:
        code = SubscriptionImportErrorCode
        report = self.report
        done = await self._applied_before([r.external_id for r in batch])
        await self._load([r.subscription_id for r in batch if r.subscription_id is not None])
        change_rows: list[tuple[Any, ...]] = []
        event_rows: list[tuple[Any, ...]] = []
        for row in batch:
            first = self.seen.get(row.external_id)
            if first is not None:
                report.add_error(
                    row.line, code.DUPLICATE_IN_FILE,
                    f"The same external_id is already on line {first}.",
                )  # fmt: skip
                continue
            self.seen[row.external_id] = row.line
            if row.external_id in done:
                report.unchanged += 1
                continue
            sub = self.subs.get(row.subscription_id) if row.subscription_id else None
            if sub is None:
                report.add_error(row.line, code.UNKNOWN_SUBSCRIPTION, "No such subscription.")
                continue
            before = sub.state
            currency = row.currency or before.currency
            amount: int | None = None
            if row.amount:
                try:
                    amount = parse_decimal(row.amount, before.currency)
                except ValueError:
                    report.add_error(
                        row.line, code.INVALID_AMOUNT,
                        f"amount is a decimal in {before.currency}, e.g. 1500.00.",
                    )  # fmt: skip
                    continue
            try:
                after = changes.apply(
                    before, row.kind, effective_at=row.effective_at, amount_minor=amount,
                    currency=currency, term_months=row.term_months,
                )  # fmt: skip
            except changes.Refusal as refusal:
                report.add_error(row.line, code[refusal.code.name], refusal.message)
                continue
            sub.state, sub.changed = after, True
            change, event = self._rows(sub, before, after, row)
            change_rows.append(change)
            event_rows.append(event)
            report.inserted += 1
        await self._write(change_rows, event_rows)

    def _rows(
        self, sub: _Sub, before: changes.State, after: changes.State, row: _Row
    ) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        change_id, event_id = self.ids.next(), self.ids.next()
        kind = row.kind.value
        amount_after = 0 if row.kind is ChangeKind.CANCELLED else after.amount_minor
        arr_delta = arr_of(amount_after, after.term_months) - arr_of(
            before.amount_minor, before.term_months
        )
        change = (
            change_id, self.vendor_id, sub.id, sub.partner_id, kind, ChangeSource.BILLING.value,
            row.external_id, row.effective_at, before.amount_minor, amount_after,
            before.currency, after.term_months, after.term_start, after.ends_at, after.renewals,
            self.now,
        )  # fmt: skip
        if self.postgres:
            if not sub.json:
                sub.json = fixed_json(
                    sub.id, sub.account_id, sub.partner_id, sub.rep_user_id, sub.sku, sub.region,
                    before.currency, sub.starts_at,
                )  # fmt: skip
            payload: Any = change_json(
                sub.json, change_id, kind, after.term_months, before.amount_minor, amount_after,
                arr_delta, after.renewals, after.term_start, after.ends_at, row.effective_at,
            )  # fmt: skip
        else:
            payload = SubscriptionChanged(
                change_id=change_id,
                subscription_id=sub.id,
                account_id=sub.account_id,
                partner_id=sub.partner_id,
                rep_user_id=sub.rep_user_id,
                kind=kind,
                sku=sub.sku,
                region=sub.region,
                currency=before.currency,
                term_months=after.term_months,
                amount_before_minor=before.amount_minor,
                amount_after_minor=amount_after,
                arr_delta_minor=arr_delta,
                renewal_number=after.renewals,
                subscription_started_at=sub.starts_at,
                term_start=after.term_start,
                term_end=after.ends_at,
                effective_at=row.effective_at,
            ).to_payload()
        # The slot ``record_event`` would give it: its partner's (infra/outbox_partitions.py).
        slot = slot_of(ordering_key(sub.id, {"partner_id": sub.partner_id}))
        outbox = (
            event_id, self.vendor_id, _EVENT_TYPES[row.kind], sub.id, slot, payload,
            row.effective_at, self.now, 0,
        )  # fmt: skip
        return change, outbox

    async def _applied_before(self, external_ids: list[str]) -> set[str]:
        if not external_ids:
            return set()
        if self.postgres:
            found = await self.connection.execute(
                text(
                    "SELECT external_id FROM subscription_change"
                    " WHERE vendor_id = :v AND external_id = ANY(:ids)"
                ).bindparams(bindparam("v", type_=Uuid())),
                {"v": self.vendor_id, "ids": external_ids},
            )
            return {r[0] for r in found}
        out: set[str] = set()
        for i in range(0, len(external_ids), 500):
            chunk = external_ids[i : i + 500]
            found = await self.connection.execute(
                text(
                    "SELECT external_id FROM subscription_change WHERE vendor_id = :v"
                    " AND external_id IN :ids"
                ).bindparams(bindparam("v", type_=Uuid()), bindparam("ids", expanding=True)),
                {"v": self.vendor_id, "ids": chunk},
            )
            out.update(r[0] for r in found)
        return out

    async def _load(self, ids: list[uuid.UUID]) -> None:
        wanted = list({i for i in ids if i not in self.subs})
        if not wanted:
            return
        t = Subscription.__table__  # type: ignore[attr-defined]
        cols = (
            t.c.id, t.c.partner_id, t.c.rep_user_id, t.c.account_id, t.c.sku, t.c.region,
            t.c.starts_at, t.c.currency, t.c.amount_minor, t.c.term_months, t.c.term_start,
            t.c.ends_at, t.c.renewals, t.c.cancelled_at,
        )  # fmt: skip
        base = sa_select(*cols).where(t.c.vendor_id == self.vendor_id)
        if self.postgres:  # one array parameter, whatever the count
            statements = [base.where(t.c.id == any_(bindparam("ids", wanted, type_=ARRAY(Uuid()))))]
        else:
            statements = [
                base.where(t.c.id.in_(wanted[i : i + 500])) for i in range(0, len(wanted), 500)
            ]
        for statement in statements:
            for row in await self.connection.execute(statement):
                sub = _Sub(row)
                self.subs[sub.id] = sub

    async def _write(
        self, change_rows: list[tuple[Any, ...]], event_rows: list[tuple[Any, ...]]
    ) -> None:
        if not change_rows:
            return
        if self.postgres:
            raw = await self.connection.get_raw_connection()
            driver: Any = raw.driver_connection
            await driver.copy_records_to_table(
                "subscription_change", records=change_rows, columns=_CHANGE_COLUMNS
            )
            await driver.copy_records_to_table(
                "outbox_event", records=event_rows, columns=_EVENT_COLUMNS
            )
            return
        change_table = SubscriptionChange.__table__  # type: ignore[attr-defined]
        event_table = OutboxEvent.__table__  # type: ignore[attr-defined]
        await self.connection.execute(
            insert(change_table), [dict(zip(_CHANGE_COLUMNS, r, strict=True)) for r in change_rows]
        )
        await self.connection.execute(
            insert(event_table), [dict(zip(_EVENT_COLUMNS, r, strict=True)) for r in event_rows]
        )

    async def merge(self) -> int:
        """Write the changed subscriptions' new states; returns how many."""
        changed = [s for s in self.subs.values() if s.changed]
        if not changed:
            return 0
        staged = [
            (s.id, s.state.amount_minor, s.state.term_months, s.state.term_start,
             s.state.ends_at, s.state.renewals, s.state.cancelled_at)
            for s in changed
        ]  # fmt: skip
        await self.connection.execute(text("DROP TABLE IF EXISTS subscription_stage"))
        await self.connection.run_sync(lambda sync: STAGE.create(sync))
        try:
            if self.postgres:
                raw = await self.connection.get_raw_connection()
                driver: Any = raw.driver_connection
                await driver.copy_records_to_table(
                    "subscription_stage", records=staged, columns=_STAGE_COLUMNS
                )
            else:
                await self.connection.execute(
                    insert(STAGE), [dict(zip(_STAGE_COLUMNS, r, strict=True)) for r in staged]
                )
            await self.connection.execute(
                text(
                    "UPDATE subscription SET amount_minor = s.amount_minor,"
                    " term_months = s.term_months, term_start = s.term_start,"
                    " ends_at = s.ends_at, renewals = s.renewals, cancelled_at = s.cancelled_at,"
                    " status = CASE WHEN s.cancelled_at IS NULL THEN subscription.status"
                    " ELSE 'CANCELLED' END, updated_at = :now"
                    " FROM subscription_stage s WHERE subscription.id = s.id"
                ).bindparams(bindparam("now", type_=UTCDateTime())),
                {"now": self.now},
            )
        finally:
            if not self.postgres:
                await self.connection.execute(text("DROP TABLE IF EXISTS subscription_stage"))
        return len(changed)
