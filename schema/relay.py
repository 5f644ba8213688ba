"""Relay plumbing: counted connections with keyset pagination, and global id decoding."""

from __future__ import annotations

import base64
import binascii
import functools
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Generic, Protocol, TypeVar

import strawberry
from graphql import GraphQLError
from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar
from strawberry import relay

from partners.roles import Principal
from schema.context import Context


class HasId(Protocol):
    id: uuid.UUID


NodeType = TypeVar("NodeType", bound=relay.Node)
RowT = TypeVar("RowT", bound=HasId)


@strawberry.type(description="A page of results (Relay cursor connection).")
class Connection(relay.Connection[NodeType], Generic[NodeType]):
    total_count: int = strawberry.field(
        description="How many items match, across all pages (only items you may see)."
    )


def encode_cursor(row_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(b"c:" + row_id.bytes).decode().rstrip("=")


def decode_cursor(cursor: str) -> uuid.UUID:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        if not raw.startswith(b"c:") or len(raw) != 18:
            raise ValueError
        return uuid.UUID(bytes=raw[2:])
    except (ValueError, binascii.Error) as exc:
        raise GraphQLError(
            "The 'after' cursor is not one this API issued.",
            extensions={"code": "INVALID_CURSOR"},
        ) from exc


def check_page_size(first: int | None, max_page_size: int) -> int:
    if first is None:
        return min(20, max_page_size)
    if first < 0:
        raise GraphQLError("'first' must not be negative.", extensions={"code": "BAD_USER_INPUT"})
    if first > max_page_size:
        raise GraphQLError(
            f"'first' may be at most {max_page_size}.",
            extensions={"code": "PAGE_SIZE_TOO_LARGE", "maxPageSize": max_page_size},
        )
    return first


async def paginate(
    context: Context,
    statement: SelectOfScalar[RowT],
    *,
    id_column: Any,
    first: int | None,
    after: str | None,
    to_node: Callable[[RowT], NodeType],
) -> Connection[NodeType]:
    """Keyset pagination over time-ordered (UUIDv7) ids: stable under concurrent inserts."""
    limit = check_page_size(first, context.services.max_page_size)
    session = context.session
    total = await session.scalar(select(func.count()).select_from(statement.subquery()))
    page_stmt = statement
    if after is not None:
        page_stmt = page_stmt.where(col(id_column) > decode_cursor(after))
    rows: Sequence[RowT] = (
        (await session.exec(page_stmt.order_by(col(id_column)).limit(limit + 1))).all()
        if limit
        else []
    )
    has_next = len(rows) > limit
    rows = rows[:limit]
    edges = [relay.Edge(cursor=encode_cursor(r.id), node=to_node(r)) for r in rows]
    return Connection(
        edges=edges,
        page_info=relay.PageInfo(
            has_next_page=has_next,
            has_previous_page=after is not None,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        total_count=int(total or 0),
    )


def parse_global_id(
    value: str | relay.GlobalID, expected_type: str | None = None
) -> uuid.UUID | None:
    """The row id inside a global id, or None when it is malformed or of another type.
    Callers answer None exactly like "not found", so a bad id reveals nothing."""
    try:
        gid = value if isinstance(value, relay.GlobalID) else relay.GlobalID.from_id(value)
        if expected_type is not None and gid.type_name != expected_type:
            return None
        return uuid.UUID(gid.node_id)
    except (ValueError, TypeError, binascii.Error, GraphQLError):
        return None


def parse_node_ids(node_ids: Iterable[str]) -> list[uuid.UUID | None]:
    """Row ids for `resolve_nodes`; None where an id is not a UUID (answered as missing)."""
    out: list[uuid.UUID | None] = []
    for raw in node_ids:
        try:
            out.append(uuid.UUID(str(raw)))
        except ValueError:
            out.append(None)
    return out


ByIds = Callable[[AsyncSession, Principal, list[uuid.UUID]], Awaitable[dict[uuid.UUID, RowT]]]


async def resolve_visible_nodes(
    context: Context,
    node_ids: Iterable[str],
    load: ByIds[RowT],
    to_node: Callable[[RowT], NodeType],
) -> list[NodeType | None]:
    """`resolve_nodes` for a Node type: load the ids the caller may see (through the
    domain's readable statement), None for the rest, in the order asked."""
    ids = parse_node_ids(node_ids)
    if context.principal is None:
        return [None] * len(ids)
    found = await load(context.session, context.principal, [i for i in ids if i is not None])
    return [to_node(found[i]) if i in found else None for i in ids]


def to_global_id(type_name: str, row_id: uuid.UUID) -> relay.GlobalID:
    return relay.GlobalID(type_name, str(row_id))


@functools.lru_cache(maxsize=100_000)
def global_id(type_name: str, row_id: uuid.UUID) -> strawberry.ID:
    """The global id as text, remembered: boards print the same participants' ids on
    every request."""
    return strawberry.ID(str(to_global_id(type_name, row_id)))
