"""A subscription's errors located at its field, as a query's are.

graphql-core locates an error its resolvers raise (``locations`` of the field, ``path`` its
response key: the alias when there is one, GraphQL spec 7.1.2) when it comes from
executing a field, and when the subscription's resolver raises before it returns its
stream. Our subscription resolvers are async generators: they raise (NOT_FOUND for a
record the caller may not read, or no longer may; an outage) as their stream is iterated,
and graphql-core lets such an error out of the response stream as it is (graphql-js does
the same). strawberry then sent it with neither ``locations`` nor ``path``, where the same
error raised by a Query field over HTTP carried both. This executor locates an error
raised by the source stream at the subscription's root field, as graphql-core locates one
raised when the stream is made.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import Any, TypeVar

from graphql import FieldNode, GraphQLError, located_error
from graphql.execution.collect_fields import collect_fields
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

T = TypeVar("T")


def root_field(executor: Any) -> tuple[list[FieldNode], str]:
    """The subscription's root field: its nodes and response key (as graphql-core's
    ``execute_subscription`` finds them)."""
    grouped = collect_fields(
        executor.schema,
        executor.fragments,
        executor.variable_values,
        executor.schema.subscription_type,
        executor.operation,
        executor.hide_suggestions,
    ).grouped_field_set
    response_key, details = next(iter(grouped.items()))
    return [d.node for d in details], response_key


def locate(error: Exception, nodes: list[FieldNode], response_key: str) -> GraphQLError:
    """``error`` as an error of the root field ``response_key`` (one already located, with
    its own path, is left as it is)."""
    return located_error(error, nodes, [response_key])


class LocatedStreamErrors(StrawberryGraphQLCoreExecutionContext):
    """An executor whose subscriptions' source streams raise located errors."""

    def cancellable_iterable(self, iterable: AsyncIterable[T]) -> AsyncIterable[T]:
        return _Located(super().cancellable_iterable(iterable), self)


class _Located(AsyncIterator[T]):
    """The source stream, an error it raises located at the root field. (A class, not an
    async generator: a frame less for every subscriber while it waits.)"""

    __slots__ = ("executor", "iterator")

    def __init__(self, iterable: AsyncIterable[T], executor: Any) -> None:
        self.iterator = iterable.__aiter__()
        self.executor = executor

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        try:
            return await self.iterator.__anext__()
        except StopAsyncIteration:
            raise
        except Exception as error:
            located = locate(error, *root_field(self.executor))
            if located is error:
                raise
            raise located from error

    async def aclose(self) -> None:
        aclose = getattr(self.iterator, "aclose", None)
        if aclose is not None:
            await aclose()
