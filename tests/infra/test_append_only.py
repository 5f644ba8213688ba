"""Every table marked append-only has the database trigger that refuses an UPDATE, at the
head of the migration history (SQLite's batch mode drops a table's triggers when it copies
the table, so a later migration could lose one without a word)."""

from __future__ import annotations

from sqlalchemy import text

from infra.append_only import TABLES, trigger_name
from infra.db import Database, is_sqlite
from migrations.metadata import target_metadata


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
