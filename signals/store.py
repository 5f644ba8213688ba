"""Writing derived signal rows: insert, or update those whose key exists."""

from __future__ import annotations

from functools import cache, lru_cache
from typing import Any

from sqlalchemy import Table, bindparam, insert, literal_column, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from infra.db import execute_core, writes_together


async def upsert(
    session: AsyncSession,
    model: type[SQLModel],
    keys: list[str],
    rows: list[dict[str, Any]],
    update: list[str] | None = None,
) -> None:
    """Insert rows, updating (or, without ``update``, keeping) those whose key exists: a
    handler, the daily job and another process's activity flush may write the same
    partner-day at once, and the last to commit wins with values it computed from
    committed facts."""
    table: Table = model.__table__  # type: ignore[attr-defined]
    await _write(session, table, tuple(keys), tuple(update or ()), rows)


async def _write(
    session: AsyncSession,
    table: Table,
    keys: tuple[str, ...] | None,
    update: tuple[str, ...],
    rows: list[dict[str, Any]],
) -> None:
    """``rows`` upserted into ``table`` on ``keys`` (None: plainly inserted)."""
    if not rows:
        return
    if keys is None:
        stmt = _insert(table)
    else:
        stmt = _statement(session.get_bind().dialect.name, table, keys, update)
    # One statement with a list of parameter sets: compiled once and cached (a VALUES list
    # built from the rows was compiled anew each call, most of a handler run's CPU), run
    # past the ORM (``execute_core``).
    if len(rows) == 1:  # a lone row is no executemany (cheaper for the driver)
        await execute_core(session, stmt, rows[0])
        return
    for i in range(0, len(rows), 2000):
        await execute_core(session, stmt, rows[i : i + 2000])


@cache
def _insert(table: Table) -> Any:
    return insert(table)


@cache
def _statement(dialect: str, table: Table, keys: tuple[str, ...], update: tuple[str, ...]) -> Any:
    """The upsert statement, built once per table and columns: building ``excluded`` (a
    column collection of the table) cost ~0.3 ms a call, a good part of a handler run."""
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert(table)
    if update:
        return stmt.on_conflict_do_update(
            index_elements=list(keys), set_={name: stmt.excluded[name] for name in update}
        )
    return stmt.on_conflict_do_nothing(index_elements=list(keys))


# Up to this many rows of a table go in a merged statement (``Writes``); more, and each
# table's rows are written on their own (a run of many partners: its statements are few
# per partner already, and a statement per shape of rows stays a small set).
MERGED_ROWS = 4

# (table, keys or None for a plain insert, columns updated on conflict, the rows)
_Part = tuple[Table, tuple[str, ...] | None, tuple[str, ...], list[dict[str, Any]]]


class Writes:
    """Rows of several tables written together, at ``flush``, in the order given: on
    PostgreSQL in one statement (each table's rows a data-modifying CTE of it: a handler's
    advance writes five tables, and a statement's round trip and its work on both sides
    were most of what a write cost); on SQLite (no data-modifying CTEs) each table's rows
    as ``upsert`` writes them, in one crossing to the driver's thread
    (``infra.db.writes_together``), with the transaction's next statement or its COMMIT
    (a handler's advance ends with its writes: they share the COMMIT's crossing; a write
    that fails is raised there). For writes that do not touch a row twice (the
    parts of one statement see the same snapshot, and one statement's ON CONFLICT may
    not update a row twice); a statement of the transaction that reads or writes these
    tables is run after a ``flush``."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._parts: list[_Part] = []

    def upsert(
        self,
        model: type[SQLModel],
        keys: list[str],
        rows: list[dict[str, Any]],
        update: list[str] | None = None,
    ) -> None:
        """``store.upsert``, at the flush."""
        if rows:
            table: Table = model.__table__  # type: ignore[attr-defined]
            self._parts.append((table, tuple(keys), tuple(update or ()), rows))

    def insert(self, table: Table, rows: list[dict[str, Any]]) -> None:
        """``rows`` inserted into ``table`` (no conflict expected), at the flush."""
        if rows:
            self._parts.append((table, None, (), rows))

    async def flush(self) -> None:
        """Write what was given since the last flush."""
        parts, self._parts = self._parts, []
        if not parts:
            return
        session = self._session
        if (
            len(parts) == 1
            or session.get_bind().dialect.name != "postgresql"
            or any(  # many rows, or rows of other columns
                len(rows) > MERGED_ROWS or any(list(row) != list(rows[0]) for row in rows)
                for *_, rows in parts
            )
        ):  # each table's rows on their own
            async with writes_together(session, to_commit=True):
                for table, keys, update, rows in parts:
                    await _write(session, table, keys, update, rows)
            return
        shape = tuple(
            (table, keys, update, tuple(rows[0]), len(rows)) for table, keys, update, rows in parts
        )
        params = {
            f"w{i}_{r}_{name}": value
            for i, (*_, rows) in enumerate(parts)
            for r, row in enumerate(rows)
            for name, value in row.items()
        }
        tables = {table.name for table, *_ in parts}
        await execute_core(session, _merged(shape), params, writes=tables)


_Shape = tuple[tuple[Table, tuple[str, ...] | None, tuple[str, ...], tuple[str, ...], int], ...]


@lru_cache(maxsize=256)
def _merged(shape: _Shape) -> Any:
    """One PostgreSQL statement writing every part of ``shape`` (its table, its conflict
    keys or None, the columns updated on conflict, the rows' columns and how many rows),
    a CTE a row: the INSERT ... ON CONFLICT of ``_statement`` with bound parameters
    (``w{part}_{row}_{column}``, of the column's type). Built once per shape, and compiled
    once (SQLAlchemy caches no INSERT of several VALUES rows: hence a CTE a row)."""
    ctes = []
    for i, (table, keys, update, names, count) in enumerate(shape):
        for r in range(count):  # a row a CTE (an INSERT of several VALUES rows is not cached)
            stmt = pg_insert(table).values(
                {name: bindparam(f"w{i}_{r}_{name}", type_=table.c[name].type) for name in names}
            )
            if keys is not None:
                if update:
                    stmt = stmt.on_conflict_do_update(
                        index_elements=list(keys),
                        set_={name: stmt.excluded[name] for name in update},
                    )
                else:
                    stmt = stmt.on_conflict_do_nothing(index_elements=list(keys))
            ctes.append(stmt.cte(f"w{i}_{r}"))
    return select(literal_column("1")).add_cte(*ctes)
