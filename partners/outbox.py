"""Who may see which outbox events: a vendor's own, to its admins only (operations data:
event types, errors, retry history)."""

from __future__ import annotations

from sqlalchemy import false
from sqlmodel import select
from sqlmodel.sql.expression import SelectOfScalar

from infra.outbox import OutboxEvent
from partners.roles import Principal, Role


def readable_outbox_events(principal: Principal) -> SelectOfScalar[OutboxEvent]:
    if principal.role is not Role.VENDOR_ADMIN:
        return select(OutboxEvent).where(false())
    return select(OutboxEvent).where(OutboxEvent.vendor_id == principal.vendor_id)
