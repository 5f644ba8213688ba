"""Batch loading of a claim's serials and attachments, so a page of claims costs two
queries, not two per claim. Loaders live in the operation's scope (`Context.loaders`)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from strawberry.dataloader import DataLoader

from deal_registration.attachments import Attachment
from deal_registration.sales import repository
from deal_registration.sales.models import SaleClaimSerial
from schema.attachments import owner_attachments
from schema.context import Context

T = TypeVar("T")


def _loader(
    ctx: Context,
    name: str,
    fetch: Callable[[Sequence[uuid.UUID]], Coroutine[Any, Any, dict[uuid.UUID, list[T]]]],
) -> DataLoader[uuid.UUID, list[T]]:
    loader: DataLoader[uuid.UUID, list[T]] | None = ctx.loaders.get(name)
    if loader is None:

        async def load(ids: list[uuid.UUID]) -> list[list[T]]:
            found = await fetch(ids)
            return [found.get(i, []) for i in ids]

        loader = DataLoader(load_fn=load, cache=False)
        ctx.loaders[name] = loader
    return loader


def claim_serials(ctx: Context) -> DataLoader[uuid.UUID, list[SaleClaimSerial]]:
    return _loader(
        ctx, "sales.claim_serials", lambda ids: repository.serials_of_claims(ctx.session, ids)
    )


def claim_attachments(ctx: Context) -> DataLoader[uuid.UUID, list[Attachment]]:
    return owner_attachments(ctx, repository.CLAIM_OWNER)
