"""Who may see which outbox events: a vendor's own, to its admins only (operations data:
event types, errors, retry history)."""

from __future__ import annotations

from sqlalchemy import false
from sqlmodel import select
from sqlmodel.sql.expression import SelectOfScalar

from infra.outbox import OutboxEvent
from partners.policy import TENANCY, TenancyOp
from partners.roles import Principal


def readable_outbox_events(principal: Principal) -> SelectOfScalar[OutboxEvent]:
    if not TENANCY.allows(principal, TenancyOp.OUTBOX_EVENTS_READ):
        return select(OutboxEvent).where(false())
    return select(OutboxEvent).where(OutboxEvent.vendor_id == principal.vendor_id)
