"""Keyset pages over a readable statement, in the order the statement names (its ORDER BY,
or the row id: UUIDv7 ids are time-ordered, so oldest first, or newest first when
``descending``). The row id ends every order as the tie-breaker, so the order is total and
a page starts exactly after its cursor's row: rows inserted or deleted between pages make
no client skip or repeat one. Text keys compare by code point on every backend
(PostgreSQL's ``COLLATE "C"``, SQLite's default), so a list reads in the same order on both.

A cursor carries the sort key values of its row (not a lookup: the cursor of a row deleted
since still marks its place) and a tag naming the table and the order, so a cursor of
another list is refused (``BadCursor``) rather than read as a place in this one. The
GraphQL layer turns a page into a Relay connection."""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import (
    Column,
    ColumnElement,
    DateTime,
    Integer,
    String,
    TypeDecorator,
    Uuid,
    and_,
    func,
    not_,
    or_,
    select,
)
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import UnaryExpression
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

T = TypeVar("T")

# A domain's `select(...)` as the layers above pass it along without building SQL.
Statement = SelectOfScalar

MAX_CURSOR_LENGTH = 2048  # a cursor carries at most a few short sort key values


class BadCursor(ValueError):
    """A cursor this list did not issue: malformed, tampered with, or another list's."""


@dataclass(frozen=True)
class Page(Generic[T]):
    rows: Sequence[T]
    cursors: Sequence[str]  # one per row: what `after` takes to go on after it
    total: int  # across all pages
    has_next: bool
    has_previous: bool  # rows of the statement at or before the `after` cursor


@dataclass(frozen=True)
class _Key:
    column: Any  # a column of the statement's entity
    descending: bool

    @property
    def name(self) -> str:
        return str(self.column.key)


async def keyset_page(
    session: AsyncSession,
    statement: SelectOfScalar[T],
    *,
    after: str | None,
    limit: int,
    descending: bool = False,
) -> Page[T]:
    """Up to ``limit`` rows of the statement after the ``after`` cursor (raises
    ``BadCursor`` for one this list did not issue), each with its cursor, and how many rows
    the statement matches in all. The statement selects one entity with an ``id``; its
    ORDER BY, if any, is made of that entity's non-null columns (``descending`` orders by
    id, newest first, and goes with no ORDER BY of the statement's)."""
    keys = _keys(statement, descending)
    tag = _tag(statement, keys)
    postgres = session.sync_session.get_bind().dialect.name == "postgresql"
    exprs = [_comparable(key.column, postgres) for key in keys]
    total = await session.scalar(
        select(func.count()).select_from(statement.order_by(None).subquery())
    )
    page = statement.order_by(None)
    has_previous = False
    if after is not None:
        past = _past(keys, exprs, _decode(after, tag, keys))
        page = page.where(past)
        before = statement.order_by(None).where(not_(past)).limit(1).subquery()
        has_previous = bool(await session.scalar(select(func.count()).select_from(before)))
    order = [
        expr.desc() if key.descending else expr.asc() for key, expr in zip(keys, exprs, strict=True)
    ]
    rows: Sequence[T] = (await session.exec(page.order_by(*order).limit(limit + 1))).all()
    shown = rows[:limit]
    return Page(
        rows=shown,
        cursors=[_encode(tag, keys, row) for row in shown],
        total=int(total or 0),
        has_next=len(rows) > limit,
        has_previous=has_previous,
    )


def _keys(statement: SelectOfScalar[Any], descending: bool) -> list[_Key]:
    entity = statement.column_descriptions[0]["entity"]
    table = entity.__table__
    id_key = _Key(table.c.id, descending)
    keys: list[_Key] = []
    for clause in statement._order_by_clauses:
        element, desc = clause, False
        if isinstance(clause, UnaryExpression) and clause.modifier in (
            operators.desc_op,
            operators.asc_op,
        ):
            element, desc = clause.element, clause.modifier is operators.desc_op
        column = table.c.get(getattr(element, "key", ""))
        if not isinstance(element, ColumnElement) or column is None or column.nullable:
            raise TypeError(f"a keyset page orders by non-null columns of {table.name}: {clause}")
        keys.append(_Key(column, desc))
    if keys and descending:
        raise TypeError("descending orders by id: give the statement no ORDER BY of its own")
    if not keys or keys[-1].name != "id":
        keys.append(id_key)
    return keys


def _comparable(column: Column[Any], postgres: bool) -> Any:
    if postgres and isinstance(_type(column), String):
        return column.collate("C")
    return column


def _type(column: Column[Any]) -> Any:
    """The column's SQL type, under a TypeDecorator (``AutoString``, ``UTCDateTime``)."""
    kind = column.type
    return kind.impl_instance if isinstance(kind, TypeDecorator) else kind


def _past(keys: list[_Key], exprs: list[Any], values: list[Any]) -> Any:
    """Rows after (key₁, …, keyₙ) = values: a larger first key, or an equal one and a larger
    second, and so on (smaller for a descending key)."""
    alternatives = []
    for i, key in enumerate(keys):
        equal = [exprs[j] == values[j] for j in range(i)]
        beyond = exprs[i] < values[i] if key.descending else exprs[i] > values[i]
        alternatives.append(and_(*equal, beyond))
    if len(keys) == 1:
        return alternatives[0]
    # The first key's bound again, on its own: the same rows, but a condition an index on
    # that key starts its scan at (PostgreSQL does not draw one out of the OR: each page
    # read the list's index from its first row, filtering every earlier one out).
    first = exprs[0] <= values[0] if keys[0].descending else exprs[0] >= values[0]
    return and_(first, or_(*alternatives))


def _tag(statement: SelectOfScalar[Any], keys: list[_Key]) -> str:
    table = statement.column_descriptions[0]["entity"].__table__.name
    order = ",".join(f"{k.name}{'-' if k.descending else '+'}" for k in keys)
    return hashlib.sha256(f"{table}:{order}".encode()).hexdigest()[:8]


def _encode(tag: str, keys: list[_Key], row: Any) -> str:
    values = [_plain(getattr(row, key.name)) for key in keys]
    text = json.dumps([tag, *values], separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _plain(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return value.hex
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str | int) and not isinstance(value, bool | enum.Enum):
        return value
    raise TypeError(f"no cursor form for a sort key of type {type(value).__name__}")


def _decode(cursor: str, tag: str, keys: list[_Key]) -> list[Any]:
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise BadCursor("too long")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        if [k.name for k in keys] == ["id"] and raw.startswith(b"c:") and len(raw) == 18:
            return [uuid.UUID(bytes=raw[2:])]  # an id cursor issued before the order tags
        decoded = json.loads(raw.decode())
        if not isinstance(decoded, list) or len(decoded) != len(keys) + 1:
            raise BadCursor("not a cursor")
        if decoded[0] != tag:
            raise BadCursor("another list's cursor")
        return [_parse(key, value) for key, value in zip(keys, decoded[1:], strict=True)]
    except (ValueError, TypeError, OverflowError, binascii.Error, RecursionError) as exc:
        raise BadCursor(str(exc)) from exc  # RecursionError: JSON nested a thousand deep


def _parse(key: _Key, value: Any) -> Any:
    """A sort key value read back as its column holds it; anything else is BadCursor."""
    kind = _type(key.column)
    if isinstance(kind, String) and isinstance(value, str):
        # Text no row holds: a lone surrogate (not UTF-8: UnicodeEncodeError) or a NUL
        # (PostgreSQL's text refuses it): the driver failed on them, a 500.
        if "\x00" in value:
            raise BadCursor("a NUL in text")
        value.encode()
        return value
    if isinstance(kind, Uuid) and isinstance(value, str):
        return uuid.UUID(hex=value)
    if isinstance(kind, DateTime) and isinstance(value, str):
        instant = datetime.fromisoformat(value)
        if instant.tzinfo is None:
            raise BadCursor("a naive instant")
        # In UTC here, as the column stores it: an instant of year 1 at +14:00 (or 9999 at
        # -14:00) has no UTC datetime (OverflowError), which the bind raised as a 500.
        return instant.astimezone(UTC)
    if isinstance(kind, Integer) and type(value) is int:
        if not -(2**63) <= value < 2**63:  # past any integer column (the driver overflowed)
            raise BadCursor(f"{key.name} out of range")
        return value
    raise BadCursor(f"not a value of {key.name}")


async def by_ids(
    session: AsyncSession, statement: SelectOfScalar[T], ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, T]:
    """The rows of the statement with these ids, by id (what `node(id)` loads)."""
    if not ids:
        return {}
    id_column: Any = statement.column_descriptions[0]["entity"].id
    rows = await session.exec(statement.where(col(id_column).in_(list(ids))))
    return {row.id: row for row in rows}  # type: ignore[attr-defined]
