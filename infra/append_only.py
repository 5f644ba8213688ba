"""Append-only tables: rows written once and never changed (the ledger, payout decisions,
credited sources, the audit log, rule firings and what ended them).

Two guards, so that no path changes such a row:

- the ORM refuses to update or delete a row of a model marked here (``AppendOnlyError`` at
  flush);
- the database refuses every UPDATE of the table (a trigger per table, migration
  ``0032_append_only_triggers``), so a bulk ``update()``, which the ORM's events never see,
  or a hand-written statement cannot change one either.

DELETE has no trigger (the test suite empties every table between tests, and SQLite has no
way to set a trigger aside for that): the ORM refuses it, and so does every DELETE statement
SQLAlchemy executes (``delete(EarningEntry)``, on a session or a connection) unless it is
run with the execution option ``PURGE`` (the test suite's wipe). Only raw SQL text passes
by, and none deletes these rows. A migration that must rewrite one of
these tables drops its trigger and creates it again (SQLite's batch mode, which copies a
table, drops it silently: ``tests/infra/test_append_only.py`` checks every table marked here
has its trigger at the head of the history).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.sql.dml import Delete

TABLES: set[str] = set()

# The execution option that lets a DELETE statement empty an append-only table.
PURGE = "channelboard_append_only_purge"


class AppendOnlyError(RuntimeError):
    """A row of an append-only table was about to be updated or deleted through the ORM."""


def trigger_name(table: str) -> str:
    return f"{table}_append_only"


def _refuse(kind: str) -> Any:
    def refuse(_mapper: Any, _connection: Any, target: Any) -> None:
        raise AppendOnlyError(f"{type(target).__name__} rows are append-only ({kind} refused)")

    return refuse


def append_only(*models: Any) -> None:
    """Mark these table models append-only in the ORM (their tables' triggers are made by a
    migration)."""
    for model in models:
        event.listen(model, "before_update", _refuse("update"))
        event.listen(model, "before_delete", _refuse("delete"))
        TABLES.add(model.__tablename__)


@event.listens_for(Engine, "before_execute")
def _refuse_delete_statement(
    _conn: Any, statement: Any, _multiparams: Any, _params: Any, execution_options: Any
) -> None:
    """A DELETE statement passes the ORM's events by (``before_delete`` sees objects only)."""
    if not isinstance(statement, Delete) or execution_options.get(PURGE):
        return
    name = getattr(statement.table, "name", None)
    if name in TABLES:
        raise AppendOnlyError(f"{name} rows are append-only (DELETE refused)")
