"""Batch loading for partner fields, so a page of partners costs one query per field."""

from __future__ import annotations

import uuid

from strawberry.dataloader import DataLoader

from partners import admin
from partners.models import User
from schema.context import Context
from schema.loaders import list_loader


def partner_managers(ctx: Context) -> DataLoader[uuid.UUID, list[User]]:
    return list_loader(
        ctx,
        "partners.managers",
        lambda ids: admin.managers_of(ctx.session, ctx.caller, ids),
    )
