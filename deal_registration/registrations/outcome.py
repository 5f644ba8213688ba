"""How an approved deal ends for the partner: withdrawn, won (with a DealWon event whose
lines share the deal's value) or lost."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlmodel.ext.asyncio.session import AsyncSession

from deal_registration.events import DealWon, Line
from deal_registration.registrations import repository
from deal_registration.registrations.lifecycle import simple_transition
from deal_registration.registrations.models import (
    DealAction,
    DealRegistration,
    DealRegistrationLine,
)
from deal_registration.registrations.policy import DEALS, DealOp
from infra.clock import Clock
from infra.money import split_minor
from infra.outbox import record_event
from partners import repository as partners
from partners.roles import Principal


async def withdraw(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    registration_id: uuid.UUID,
    reason: str = "",
) -> DealRegistration:
    DEALS.require(principal, DealOp.WITHDRAW)
    return await simple_transition(
        session, principal, clock, registration_id, DealAction.WITHDRAW, reason
    )


async def mark_lost(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    registration_id: uuid.UUID,
    reason: str = "",
) -> DealRegistration:
    DEALS.require(principal, DealOp.MARK_LOST)
    return await simple_transition(
        session, principal, clock, registration_id, DealAction.MARK_LOST, reason
    )


async def mark_won(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    registration_id: uuid.UUID,
    reason: str = "",
) -> DealRegistration:
    """An approved deal was won: recorded with a DealWon event in the same transaction."""
    DEALS.require(principal, DealOp.MARK_WON)
    registration = await simple_transition(
        session, principal, clock, registration_id, DealAction.MARK_WON, reason
    )
    lines = (await repository.lines_of(session, [registration.id]))[registration.id]
    partner = await partners.get_partner(session, registration.partner_id)
    event = DealWon(
        registration_id=registration.id,
        partner_id=registration.partner_id,
        rep_user_id=registration.registered_by_id,
        region=partner.region if partner else "",
        currency=registration.currency,
        amount_minor=registration.estimated_value_minor,
        won_at=clock.now(),
        lines=allocate(registration.estimated_value_minor, lines),
        customer_name=registration.customer_name,
        customer_domain=registration.customer_domain,
    )
    await record_event(
        session, clock, vendor_id=registration.vendor_id, type=event.type,
        aggregate_id=registration.id, payload=event.to_payload(),
    )  # fmt: skip
    return registration


def allocate(amount_minor: int, lines: Sequence[DealRegistrationLine]) -> list[Line]:
    """Split the deal's value over its lines in proportion to list price x quantity
    (``infra.money.split_minor``: the shares add up exactly)."""
    shares = split_minor(amount_minor, [li.unit_list_price_minor * li.quantity for li in lines])
    return [
        Line(sku=li.sku, units=li.quantity, amount_minor=s)
        for li, s in zip(lines, shares, strict=True)
    ]
