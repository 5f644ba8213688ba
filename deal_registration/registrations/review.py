"""Review: starting a review, rejecting, and approving — which protects the customer for
the vendor's protection period (one protected registration per customer, always)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from deal_registration.events import DealApproved
from deal_registration.registrations.detection import detect_conflicts
from deal_registration.registrations.errors import DealRegistrationErrorCode as Code
from deal_registration.registrations.expiry import expire_due
from deal_registration.registrations.lifecycle import (
    check_transition,
    clean_reason,
    load_registration,
    record_transition,
    simple_transition,
)
from deal_registration.registrations.models import (
    PROTECTED_CUSTOMER_INDEX,
    ConflictStage,
    DealAction,
    DealRegistration,
    DealStatus,
)
from deal_registration.registrations.policy import DEALS, DealOp
from deal_registration.registrations.program_settings import lock_program
from infra.clock import Clock
from infra.errors import DomainError
from infra.outbox import record_event
from partners import repository as partners
from partners.roles import Principal


async def start_review(
    session: AsyncSession, principal: Principal, clock: Clock, *, registration_id: uuid.UUID
) -> DealRegistration:
    DEALS.require(principal, DealOp.START_REVIEW)
    return await simple_transition(
        session, principal, clock, registration_id, DealAction.START_REVIEW, ""
    )


async def reject(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    registration_id: uuid.UUID,
    reason: str,
) -> DealRegistration:
    DEALS.require(principal, DealOp.REJECT)
    return await simple_transition(
        session, principal, clock, registration_id, DealAction.REJECT, reason,
        reason_required=True,
    )  # fmt: skip


async def approve(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    registration_id: uuid.UUID,
    reason: str = "",
    override_reason: str = "",
) -> DealRegistration:
    """Approve and protect the customer for the vendor's protection period. When another
    registration already protects a conflicting customer, approval needs an override
    reason and grants no protection: one protected registration per customer, always."""
    DEALS.require(principal, DealOp.APPROVE)
    reason = clean_reason(reason, required=False)
    override_reason = clean_reason(override_reason, required=False, name="override_reason")
    program = await lock_program(session, principal.vendor_id, clock)
    now = clock.now()
    await expire_due(session, clock, vendor_id=principal.vendor_id)
    registration = await load_registration(session, principal, registration_id)
    current = check_transition(registration, DealAction.APPROVE, now)
    found = await detect_conflicts(session, registration, program, now, ConflictStage.APPROVAL)
    protecting = [
        other for _row, other in found if other.status is DealStatus.APPROVED and other.is_protected
    ]
    if protecting and not override_reason:
        other = protecting[0]
        partner = await partners.get_partner(session, other.partner_id)
        until = other.expires_at.isoformat() if other.expires_at else "?"
        raise DomainError(
            Code.OVERRIDE_REQUIRED,
            f"{partner.name if partner else 'Another partner'}'s registration for "
            f"{other.customer_name} ({other.customer_domain}) is protected until {until}. "
            "Give an override reason to approve this one without protection.",
            "override_reason",
        )
    registration.status = DealStatus.APPROVED
    registration.approved_at = now
    registration.expires_at = now + timedelta(days=program.protection_days)
    registration.is_protected = not protecting
    registration.decided_at = now
    registration.decided_by_id = principal.user_id
    registration.decision_reason = reason
    registration.override_reason = override_reason if protecting else ""
    registration.updated_at = now
    try:
        async with session.begin_nested():
            session.add(registration)
            await session.flush()
    except IntegrityError as exc:
        if PROTECTED_CUSTOMER_INDEX not in str(exc.orig) and "customer_domain" not in str(exc.orig):
            raise
        raise DomainError(
            Code.OVERRIDE_REQUIRED,
            "Another registration already protects this customer.",
            "override_reason",
        ) from exc
    await record_transition(
        session, clock, principal, registration, DealAction.APPROVE, current, reason
    )
    assert registration.expires_at is not None
    event = DealApproved(
        registration_id=registration.id,
        partner_id=registration.partner_id,
        rep_user_id=registration.registered_by_id,
        customer_domain=registration.customer_domain,
        approved_at=now,
        protected_until=registration.expires_at if registration.is_protected else now,
    )
    await record_event(
        session, clock, vendor_id=registration.vendor_id, type=event.type,
        aggregate_id=registration.id, payload=event.to_payload(),
    )  # fmt: skip
    return registration
