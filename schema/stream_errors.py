"""A subscription's errors located at its field, as a query's are.

graphql-core locates an error its resolvers raise (``locations`` of the field, ``path`` its
response key: the alias when there is one, GraphQL spec 7.1.2) when it comes from
executing a field, and when a subscription's resolver raises before it returns its
stream. Our subscription resolvers are async generators: they raise (NOT_FOUND for a
record the caller may not read, or no longer may; FORBIDDEN; an outage) as their stream is
iterated, and graphql-core lets such an error out of the response stream as it is
(graphql-js does the same). strawberry then sent it with neither ``locations`` nor
``path``, where the same error raised by a Query field over HTTP carried both.
``locate_stream_errors`` wraps each Subscription field's ``subscribe`` so that an error its
stream raises is located at the field, with the resolve info graphql-core gave it.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from inspect import isawaitable
from typing import Any

from graphql import FieldNode, GraphQLError, GraphQLResolveInfo, GraphQLSchema, located_error


def locate(error: Exception, nodes: list[FieldNode], response_key: str) -> GraphQLError:
    """``error`` as an error of the root field ``response_key`` (one already located, with
    its own path, is left as it is)."""
    return located_error(error, nodes, [response_key])


def locate_stream_errors(schema: GraphQLSchema) -> None:
    """Wrap the ``subscribe`` of every field of ``schema``'s Subscription type (once, as
    the schema is built)."""
    if schema.subscription_type is None:
        return
    for field in schema.subscription_type.fields.values():
        if field.subscribe is not None:
            field.subscribe = _locating(field.subscribe)


def _locating(subscribe: Callable[..., Any]) -> Callable[..., Any]:
    def located_subscribe(root: Any, info: GraphQLResolveInfo[Any], **args: Any) -> Any:
        stream = subscribe(root, info, **args)
        if isawaitable(stream):
            return _awaited(stream, info)
        return _Located(stream, info) if isinstance(stream, AsyncIterable) else stream

    return located_subscribe


async def _awaited(stream: Awaitable[Any], info: GraphQLResolveInfo[Any]) -> Any:
    made = await stream
    return _Located(made, info) if isinstance(made, AsyncIterable) else made


class _Located(AsyncIterator[Any]):
    """The source stream, an error it raises located at its field. (A class, not an async
    generator: no frame more for every subscriber while it waits.)"""

    __slots__ = ("info", "iterator")

    def __init__(self, iterable: AsyncIterable[Any], info: GraphQLResolveInfo[Any]) -> None:
        self.iterator = iterable.__aiter__()
        self.info = info

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.iterator.__anext__()
        except StopAsyncIteration:
            raise
        except Exception as error:
            located = located_error(error, self.info.field_nodes, self.info.path.as_list())
            if located is error:
                raise
            raise located from error

    async def aclose(self) -> None:
        aclose = getattr(self.iterator, "aclose", None)
        if aclose is not None:
            await aclose()
