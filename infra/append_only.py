"""Append-only tables: rows written once and never changed (the ledger, payout decisions,
credited sources, the audit log, rule firings and what ended them).

Two guards, so that no path changes such a row:

- the ORM refuses to update or delete a row of a model marked here (``AppendOnlyError`` at
  flush);
- the database refuses every UPDATE of the table (a trigger per table, migration
  ``0032_append_only_triggers``), so a bulk ``update()``, which the ORM's events never see,
  or a hand-written statement cannot change one either.

DELETE is refused by the ORM only: the test suite empties every table between tests, and
SQLite has no way to set a trigger aside for that. A migration that must rewrite one of
these tables drops its trigger and creates it again (SQLite's batch mode, which copies a
table, drops it silently: ``tests/infra/test_append_only.py`` checks every table marked here
has its trigger at the head of the history).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

TABLES: set[str] = set()


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
