"""Every table marked append-only has the database trigger that refuses an UPDATE, at the
head of the migration history (SQLite's batch mode drops a table's triggers when it copies
the table, so a later migration could lose one without a word); a DELETE statement is
refused before it reaches the database."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, text
from sqlmodel import col

from infra.append_only import TABLES, AppendOnlyError, trigger_name
from infra.audit import AuditEntry, record
from infra.clock import OffsetClock
from infra.db import Database, is_sqlite
from migrations.metadata import target_metadata
from tests.factories import Tenant
from tests.support import count_rows


async def _triggers(db: Database) -> set[tuple[str, str]]:
    query = (
        "SELECT tbl_name, name FROM sqlite_master WHERE type = 'trigger'"
        if is_sqlite(db.url)
        else "SELECT DISTINCT event_object_table, trigger_name FROM information_schema.triggers"
    )
    async with db.session() as session:
        return {(row[0], row[1]) for row in (await session.execute(text(query))).all()}


async def test_every_append_only_table_has_its_trigger(db: Database) -> None:
    target_metadata()  # every model imported, so every mark is made
    assert TABLES >= {"earning_entry", "audit_entry", "incentive_rule_firing"}
    expected = {(table, trigger_name(table)) for table in TABLES}
    assert expected <= await _triggers(db)


async def test_a_delete_statement_is_refused_on_a_session_and_a_connection(
    db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """``before_delete`` sees the ORM's objects only: a ``delete(AuditEntry)`` statement
    emptied the audit log (there is no DELETE trigger: the test suite's wipe needs none)."""
    async with db.transaction() as session:
        await record(
            session, vendor_id=tenant.vendor.id, actor="operator:test", action="x.y",
            entity_type="x", entity_id="1", before=None, after={"a": 1}, reason=None,
            at=clock.now(),
        )  # fmt: skip
    for name in sorted(TABLES):
        table = target_metadata().tables[name]
        with pytest.raises(AppendOnlyError):
            async with db.transaction() as session:
                await session.execute(delete(table))
        with pytest.raises(AppendOnlyError):
            async with db.transaction() as session:
                await (await session.connection()).execute(delete(table))
    with pytest.raises(AppendOnlyError):
        async with db.transaction() as session:
            await session.execute(delete(AuditEntry).where(col(AuditEntry.action) == "x.y"))
    assert await count_rows(db, AuditEntry) == 1
