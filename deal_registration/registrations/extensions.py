"""Extending an approved registration's protection: the partner asks, a reviewer decides."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlmodel.ext.asyncio.session import AsyncSession

from deal_registration.registrations import repository
from deal_registration.registrations.errors import DealRegistrationErrorCode as Code
from deal_registration.registrations.lifecycle import (
    check_transition,
    clean_reason,
    load_registration,
    move_protection,
    record_transition,
)
from deal_registration.registrations.models import (
    DealAction,
    DealExtensionRequest,
    DealRegistration,
    ExtensionStatus,
)
from deal_registration.registrations.policy import DEALS, DealOp
from infra.clock import Clock
from infra.errors import DomainError
from partners.roles import Principal


async def request_extension(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    registration_id: uuid.UUID,
    reason: str,
) -> DealRegistration:
    DEALS.require(principal, DealOp.REQUEST_EXTENSION)
    now = clock.now()
    reason = clean_reason(reason, required=True)
    registration = await load_registration(session, principal, registration_id)
    current = check_transition(registration, DealAction.REQUEST_EXTENSION, now)
    program = await repository.program_settings(session, registration.vendor_id)
    if await repository.pending_extension(session, registration.id) is not None:
        raise DomainError(
            Code.EXTENSION_PENDING, "An extension request is already waiting for review.", "id"
        )
    if registration.extensions_granted >= program.max_extensions:
        raise DomainError(
            Code.EXTENSION_LIMIT_REACHED,
            f"This registration has had the most extensions allowed ({program.max_extensions}).",
            "id",
        )
    session.add(
        DealExtensionRequest(
            vendor_id=registration.vendor_id,
            registration_id=registration.id,
            status=ExtensionStatus.PENDING,
            reason=reason,
            requested_by_id=principal.user_id,
            requested_at=now,
        )
    )
    await record_transition(
        session, clock, principal, registration, DealAction.REQUEST_EXTENSION, current, reason
    )
    return registration


async def decide_extension(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    registration_id: uuid.UUID,
    grant: bool,
    reason: str = "",
) -> DealRegistration:
    DEALS.require(principal, DealOp.DECIDE_EXTENSION)
    now = clock.now()
    action = DealAction.GRANT_EXTENSION if grant else DealAction.REFUSE_EXTENSION
    reason = clean_reason(reason, required=not grant)
    registration = await load_registration(session, principal, registration_id)
    current = check_transition(registration, action, now)
    request = await repository.pending_extension(session, registration.id)
    if request is None:
        raise DomainError(
            Code.NO_PENDING_EXTENSION, "No extension request is waiting for review.", "id"
        )
    program = await repository.program_settings(session, registration.vendor_id)
    if grant:
        if registration.extensions_granted >= program.max_extensions:
            raise DomainError(
                Code.EXTENSION_LIMIT_REACHED,
                f"At most {program.max_extensions} extensions are allowed.",
                "id",
            )
        registration.extensions_granted += 1
        await move_protection(
            session, clock, registration, timedelta(days=program.extension_days), action
        )
    request.status = ExtensionStatus.GRANTED if grant else ExtensionStatus.REFUSED
    request.decided_by_id = principal.user_id
    request.decided_at = now
    request.decision_reason = reason
    session.add(request)
    await session.flush()
    await record_transition(session, clock, principal, registration, action, current, reason)
    return registration
