"""Who may read an attachment: whoever may read the record it belongs to. Kept apart from
``attachments`` (storage and checks), which the owners' own services import."""

from __future__ import annotations

import uuid

from sqlalchemy import and_, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from deal_registration.attachments import Attachment
from deal_registration.registrations import repository as registrations_repository
from deal_registration.registrations.models import DealRegistration
from deal_registration.sales import repository as sales_repository
from deal_registration.sales.models import SaleClaim
from partners.roles import Principal


def readable_attachments(principal: Principal) -> SelectOfScalar[Attachment]:
    """The files on owners the caller may read (a new owner kind adds its line here)."""
    claims = sales_repository.readable_claims(principal).with_only_columns(col(SaleClaim.id))
    registrations = registrations_repository.readable_registrations(principal).with_only_columns(
        col(DealRegistration.id)
    )
    return select(Attachment).where(
        Attachment.vendor_id == principal.vendor_id,
        or_(
            and_(
                col(Attachment.owner_kind) == sales_repository.CLAIM_OWNER,
                col(Attachment.owner_id).in_(claims),
            ),
            and_(
                col(Attachment.owner_kind) == registrations_repository.REGISTRATION_OWNER,
                col(Attachment.owner_id).in_(registrations),
            ),
        ),
    )


async def get_readable_attachment(
    session: AsyncSession, principal: Principal, attachment_id: uuid.UUID
) -> Attachment | None:
    rows = await session.exec(readable_attachments(principal).where(Attachment.id == attachment_id))
    return rows.first()
