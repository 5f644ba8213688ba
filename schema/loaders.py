"""The one way fields batch their reads: a DataLoader per operation (``Context.loaders``)
that answers a list per key from one call of a ``{key: [rows]}`` fetch, so a page of N
nodes costs one query per field, not N."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from strawberry.dataloader import DataLoader

from schema.context import Context

T = TypeVar("T")


def list_loader(
    ctx: Context,
    name: str,
    fetch: Callable[[Sequence[uuid.UUID]], Coroutine[Any, Any, dict[uuid.UUID, list[T]]]],
) -> DataLoader[uuid.UUID, list[T]]:
    """The operation's loader called ``name`` (made on first use); a key ``fetch`` does not
    answer gets an empty list."""
    loader: DataLoader[uuid.UUID, list[T]] | None = ctx.loaders.get(name)
    if loader is None:

        async def load(ids: list[uuid.UUID]) -> list[list[T]]:
            found = await fetch(ids)
            return [found.get(i, []) for i in ids]

        loader = DataLoader(load_fn=load, cache=False)
        ctx.loaders[name] = loader
    return loader
