"""Relay plumbing: counted connections with keyset pagination, and global id decoding."""

from __future__ import annotations

import binascii
import functools
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Generic, Protocol, TypeVar

import strawberry
from graphql import GraphQLError
from strawberry import Info, relay

from infra.db import DbSession
from infra.pages import BadCursor, Statement, keyset_page
from partners.roles import Principal
from schema.context import Context


class HasId(Protocol):
    id: uuid.UUID


NodeType = TypeVar("NodeType", bound=relay.Node)
RowT = TypeVar("RowT", bound=HasId)


@strawberry.type(
    description="A page of results (Relay cursor connection), read forward: `first` items "
    "(default 20, at most 100: PAGE_SIZE_TOO_LARGE; negative: BAD_USER_INPUT) `after` a "
    "cursor this same list issued (any other: INVALID_CURSOR). Pages follow the list's order, "
    "ties broken by id, so items added or removed between pages make none skip or repeat."
)
class Connection(relay.Connection[NodeType], Generic[NodeType]):
    total_count: int = strawberry.field(
        description="How many items match, across all pages (only items you may see)."
    )


def invalid_cursor() -> GraphQLError:
    """The error for an `after` this list did not issue (any connection's, a board's)."""
    return GraphQLError(
        "The 'after' cursor is not one this list issued.", extensions={"code": "INVALID_CURSOR"}
    )


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
    statement: Statement[RowT],
    *,
    first: int | None,
    after: str | None,
    to_node: Callable[[RowT], NodeType],
    descending: bool = False,
) -> Connection[NodeType]:
    """A Relay connection over a domain's readable statement, in the statement's order (by
    id when it names none; newest first when ``descending``): keyset pages, cursors that
    carry the row's sort keys (``infra.pages``); a cursor this list did not issue is
    INVALID_CURSOR, a ``first`` out of range BAD_USER_INPUT or PAGE_SIZE_TOO_LARGE."""
    limit = check_page_size(first, context.services.max_page_size)
    try:
        page = await keyset_page(
            context.session, statement, after=after, limit=limit, descending=descending
        )
    except BadCursor as exc:
        raise invalid_cursor() from exc
    edges = [
        relay.Edge(cursor=cursor, node=to_node(row))
        for row, cursor in zip(page.rows, page.cursors, strict=True)
    ]
    return Connection(
        edges=edges,
        page_info=relay.PageInfo(
            has_next_page=page.has_next,
            has_previous_page=page.has_previous,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        total_count=page.total,
    )


def parse_global_id(
    value: str | relay.GlobalID, expected_type: str | None = None
) -> uuid.UUID | None:
    """The row id inside a global id, or None when it is malformed or of another type.
    Callers answer None exactly like "not found", so a bad id reveals nothing."""
    if isinstance(value, str):
        return _parse_text(value, expected_type)
    try:
        gid = value if isinstance(value, relay.GlobalID) else relay.GlobalID.from_id(value)
        if expected_type is not None and gid.type_name != expected_type:
            return None
        return uuid.UUID(gid.node_id)
    except (ValueError, TypeError, binascii.Error, GraphQLError):
        return None


@functools.lru_cache(maxsize=10_000)
def _parse_text(value: str, expected_type: str | None) -> uuid.UUID | None:
    """parse_global_id of a string: a pure function, remembered (clients send the same
    few ids again and again; UUIDs are immutable)."""
    try:
        gid = relay.GlobalID.from_id(value)
        if expected_type is not None and gid.type_name != expected_type:
            return None
        return uuid.UUID(gid.node_id)
    except (ValueError, TypeError, binascii.Error, GraphQLError):
        return None


NO_ROW = uuid.UUID(int=0)  # what a malformed global id reads as (UUIDv7 ids never are 0)


def row_id(value: str | relay.GlobalID, type_name: str) -> uuid.UUID:
    """The row id inside a global id of that type. A malformed id, or one of another type,
    reads as an id no row has, so the domain answers it exactly like a missing or
    invisible row (a mutation's NOT_FOUND, a filter that matches nothing): it reveals
    nothing, and is reported one way."""
    return parse_global_id(value, type_name) or NO_ROW


def parse_node_ids(node_ids: Iterable[str]) -> list[uuid.UUID | None]:
    """Row ids for `resolve_nodes`; None where an id is not a UUID (answered as missing)."""
    out: list[uuid.UUID | None] = []
    for raw in node_ids:
        try:
            out.append(uuid.UUID(str(raw)))
        except ValueError:
            out.append(None)
    return out


ByIds = Callable[[DbSession, Principal, list[uuid.UUID]], Awaitable[dict[uuid.UUID, RowT]]]


def visible_nodes(
    load: ByIds[RowT] | None, to_node: Callable[[Any, RowT, Context], Any] | None = None
) -> Any:
    """The one `resolve_nodes` of every Node type, as a class attribute:

        resolve_nodes = visible_nodes(repository.partners_by_ids)

    `node(id)` / `nodes(ids)` load the ids the caller may see through the domain's
    readable statement (``load``), answer None for the rest (and for malformed ids or an
    anonymous caller), in the order asked. ``to_node(cls, row, context)`` builds the node
    (default ``cls.from_model(row)``); ``load=None`` marks a type reachable only through
    its list, never by id."""

    async def resolve_nodes(
        cls: Any, *, info: Info[Context, None], node_ids: Iterable[str], required: bool = False
    ) -> list[Any]:
        ids = parse_node_ids(node_ids)
        principal = info.context.principal
        if load is None or principal is None:
            return [None] * len(ids)
        found = await load(info.context.session, principal, [i for i in ids if i is not None])
        build = to_node or (lambda c, row, _ctx: c.from_model(row))
        return [build(cls, found[i], info.context) if i in found else None for i in ids]

    return classmethod(resolve_nodes)


def to_global_id(type_name: str, row_id: uuid.UUID) -> relay.GlobalID:
    return relay.GlobalID(type_name, str(row_id))


@functools.lru_cache(maxsize=100_000)
def global_id(type_name: str, row_id: uuid.UUID) -> strawberry.ID:
    """The global id as text, remembered: boards print the same participants' ids on
    every request."""
    return strawberry.ID(str(to_global_id(type_name, row_id)))
