"""Steps a migration runs outside its transaction (Alembic's ``autocommit_block``: an index
built CONCURRENTLY on PostgreSQL), each one safe to run again.

A migration's own steps and its revision stamp commit together, so a process killed
mid-migration leaves either all of it or none of it. A step outside the transaction
commits on its own, before the stamp: a kill between the two (or during it, where the
server leaves an index CONCURRENTLY half-built, marked invalid) leaves its effect under
the old revision, and the next upgrade runs the step again. Done plainly it then failed
("relation already exists", "index already exists") on every attempt, the database stuck
one revision short. Migrations leave their transaction through these functions only
(tests/migrations/test_killed_migrations.py checks that none calls autocommit_block)."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

_INVALID = sa.text(
    "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relname = :name AND n.nspname = current_schema() AND NOT i.indisvalid"
)


def create_index(name: str, table: str, columns: Sequence[str], *, unique: bool = False) -> None:
    """CREATE INDEX (CONCURRENTLY on PostgreSQL) unless it is there, valid: an index a
    killed build left invalid (its name taken, the index unused) is dropped first."""
    with op.get_context().autocommit_block():
        bind = op.get_bind()
        if bind.dialect.name == "postgresql" and bind.execute(_INVALID, {"name": name}).first():
            op.drop_index(
                op.f(name), table_name=table, postgresql_concurrently=True, if_exists=True
            )
        op.create_index(
            op.f(name), table, list(columns), unique=unique, postgresql_concurrently=True,
            if_not_exists=True,
        )  # fmt: skip


def drop_index(name: str, table: str) -> None:
    """DROP INDEX (CONCURRENTLY on PostgreSQL) if it is there."""
    with op.get_context().autocommit_block():
        op.drop_index(op.f(name), table_name=table, postgresql_concurrently=True, if_exists=True)
