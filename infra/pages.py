"""Keyset pages over a readable statement: stable under concurrent inserts, because ids are
time-ordered (UUIDv7). The GraphQL layer turns a page into a Relay connection."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

T = TypeVar("T")

# A domain's `select(...)` as the layers above pass it along without building SQL.
Statement = SelectOfScalar


@dataclass(frozen=True)
class Page(Generic[T]):
    rows: Sequence[T]
    total: int  # across all pages
    has_next: bool


async def keyset_page(
    session: AsyncSession,
    statement: SelectOfScalar[T],
    *,
    after: uuid.UUID | None,
    limit: int,
    descending: bool = False,
) -> Page[T]:
    """Up to ``limit`` rows of the statement with ids above ``after``, in id order (below it,
    in descending order: newest first), and how many rows the statement matches in all. The
    statement selects one entity with an ``id``."""
    id_column: Any = statement.column_descriptions[0]["entity"].id
    total = await session.scalar(select(func.count()).select_from(statement.subquery()))
    page = statement
    if after is not None:
        page = page.where(col(id_column) < after if descending else col(id_column) > after)
    order = col(id_column).desc() if descending else col(id_column)
    rows: Sequence[T] = (
        (await session.exec(page.order_by(order).limit(limit + 1))).all() if limit else []
    )
    return Page(rows=rows[:limit], total=int(total or 0), has_next=len(rows) > limit)


async def by_ids(
    session: AsyncSession, statement: SelectOfScalar[T], ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, T]:
    """The rows of the statement with these ids, by id (what `node(id)` loads)."""
    if not ids:
        return {}
    id_column: Any = statement.column_descriptions[0]["entity"].id
    rows = await session.exec(statement.where(col(id_column).in_(list(ids))))
    return {row.id: row for row in rows}  # type: ignore[attr-defined]
