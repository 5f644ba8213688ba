"""Batch loading of a claim's serials and attachments, so a page of claims costs two
queries, not two per claim. Loaders live in the operation's scope (`Context.loaders`)."""

from __future__ import annotations

import uuid

from strawberry.dataloader import DataLoader

from deal_registration.attachments import Attachment
from deal_registration.sales import repository
from deal_registration.sales.models import SaleClaimSerial
from schema.attachments import owner_attachments
from schema.context import Context
from schema.loaders import list_loader


def claim_serials(ctx: Context) -> DataLoader[uuid.UUID, list[SaleClaimSerial]]:
    return list_loader(
        ctx, "sales.claim_serials", lambda ids: repository.serials_of_claims(ctx.session, ids)
    )


def claim_attachments(ctx: Context) -> DataLoader[uuid.UUID, list[Attachment]]:
    return owner_attachments(ctx, repository.CLAIM_OWNER)
