"""A handler's advance writes its rows together (``signals.store.Writes``): on PostgreSQL
in one statement (a data-modifying CTE a row), on SQLite a statement a table, in the same
order; the rows are the same either way, and the read caches hear of every table."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import event
from sqlmodel import col, select

from infra.clock import OffsetClock
from infra.db import Database
from partners.roles import Role
from schema.context import Services
from signals import store
from signals.models import SignalRepFact, SignalRepSnapshot
from tests.earnings.test_uncovered_sales import APPROVE
from tests.factories import Tenant
from tests.signals.scenarios import settle
from tests.signals.test_one_run import kept_and_rebuilt, submitted
from tests.support import GQL

SIGNAL_TABLES = ("signal_fact", "signal_snapshot", "signal_rep_fact", "signal_rep_snapshot")


async def test_an_approval_writes_its_signal_rows_in_one_statement_on_postgresql(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    claim = await submitted(gql, db, clock, tenant, services)
    data = await gql.data(
        APPROVE, {"input": {"id": claim}}, as_user=tenant.user(Role.CHANNEL_MANAGER)
    )
    assert data["saleClaimApprove"]["saleClaim"] == {"state": "APPROVED"}
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", seen)
    epochs = db.epochs.stamp(SIGNAL_TABLES)
    try:
        await settle(services)
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", seen)

    writes = [s for s in statements if any(f"INSERT INTO {t} " in s for t in SIGNAL_TABLES)]
    if db.url.startswith("postgresql"):
        # The fact, the snapshot, SignalsChanged and the rep's fact and snapshot.
        assert len(writes) == 1, writes
        assert all(f"INSERT INTO {t} " in writes[0] for t in (*SIGNAL_TABLES, "outbox_event"))
    else:
        assert len(writes) == len(SIGNAL_TABLES), writes
    # The read caches heard of each table (reported at the commit).
    after = db.epochs.stamp(SIGNAL_TABLES)
    assert all(a > b for a, b in zip(after[1:], epochs[1:], strict=True)), (epochs, after)
    kept, rebuilt = await kept_and_rebuilt(db, clock, tenant)
    assert rebuilt == kept


def _rep_rows(
    partner_id: uuid.UUID, vendor_id: uuid.UUID, reps: list[uuid.UUID], day: date, sales: int
) -> list[dict[str, Any]]:
    counters = dict.fromkeys(
        ("sales_minor", "reversals", "reversed_minor", "claims_submitted", "deals_registered",
         "deals_won", "deals_lost", "pipeline_delta_minor"), 0,
    )  # fmt: skip
    return [
        {"partner_id": partner_id, "rep_user_id": rep, "day": day, "vendor_id": vendor_id,
         "currency": "USD", **counters, "sales": sales + i}
        for i, rep in enumerate(reps)
    ]  # fmt: skip


def _snapshot_rows(
    partner_id: uuid.UUID, vendor_id: uuid.UUID, reps: list[uuid.UUID], day: date, n: int
) -> list[dict[str, Any]]:
    at = datetime(2026, 3, 1, 10, n, tzinfo=UTC)
    return [
        {"partner_id": partner_id, "rep_user_id": rep, "day": day, "vendor_id": vendor_id,
         "currency": "USD", "values": {"rep_sales_7d": n + i, "share": 0.5},
         "basis": {"n": [n, i]}, "computed_at": at}
        for i, rep in enumerate(reps)
    ]  # fmt: skip


async def _stored(db: Database, vendor_id: uuid.UUID) -> tuple[list[Any], list[Any]]:
    async with db.session() as session:
        facts = [
            r.model_dump()
            for r in await session.exec(
                select(SignalRepFact)
                .where(SignalRepFact.vendor_id == vendor_id)
                .order_by(col(SignalRepFact.rep_user_id))
            )
        ]
        snapshots = [
            r.model_dump()
            for r in await session.exec(
                select(SignalRepSnapshot)
                .where(SignalRepSnapshot.vendor_id == vendor_id)
                .order_by(col(SignalRepSnapshot.rep_user_id))
            )
        ]
    return facts, snapshots


async def test_writes_store_what_the_upserts_store_merged_or_not(
    db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """Rows inserted, then updated on their keys, through ``Writes`` (a table's rows beyond
    ``MERGED_ROWS`` are written on their own, with the other tables' rows) and through
    ``store.upsert``: the same rows."""
    day = date(2026, 3, 1)
    reps = sorted(uuid.uuid4() for _ in range(store.MERGED_ROWS + 2))
    ours, theirs = tenant.partners[0].id, tenant.partners[1].id
    vendor = tenant.vendor.id
    keys = ["partner_id", "rep_user_id", "day"]
    fact_columns = ["currency", "sales"]
    snapshot_columns = ["currency", "values", "basis", "computed_at"]

    for n, count in ((1, len(reps)), (2, len(reps)), (3, 2)):  # many rows, then a few
        async with db.transaction() as session:
            writes = store.Writes(session)
            writes.upsert(
                SignalRepFact, keys, _rep_rows(ours, vendor, reps[:count], day, n), fact_columns
            )
            writes.upsert(
                SignalRepSnapshot, keys, _snapshot_rows(ours, vendor, reps[:count], day, n),
                snapshot_columns,
            )  # fmt: skip
            await writes.flush()
        async with db.transaction() as session:
            await store.upsert(
                session, SignalRepFact, keys, _rep_rows(theirs, vendor, reps[:count], day, n),
                fact_columns,
            )  # fmt: skip
            await store.upsert(
                session, SignalRepSnapshot, keys,
                _snapshot_rows(theirs, vendor, reps[:count], day, n), snapshot_columns,
            )  # fmt: skip

    facts, snapshots = await _stored(db, vendor)
    assert len(facts) == len(snapshots) == 2 * len(reps)

    def of(rows: list[Any], partner_id: uuid.UUID) -> list[Any]:
        return [{**r, "partner_id": None} for r in rows if r["partner_id"] == partner_id]

    assert of(facts, ours) == of(facts, theirs)
    assert of(snapshots, ours) == of(snapshots, theirs)
    # The last write (two rows) updated those two, and left the others as written before.
    mine = of(facts, ours)
    assert [f["sales"] for f in mine] == [3, 4, *(2 + i for i in range(2, len(reps)))]
    assert of(snapshots, ours)[0]["values"] == {"rep_sales_7d": 3, "share": 0.5}
