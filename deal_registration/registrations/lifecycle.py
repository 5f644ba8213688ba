"""The lifecycle every action goes through: which statuses it may start from and where it
leads, loading a registration for an action, and the transition rows (audit and notices)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlmodel.ext.asyncio.session import AsyncSession

from deal_registration.events import DealProtectionChanged
from deal_registration.registrations import notices, repository
from deal_registration.registrations.errors import DealRegistrationErrorCode as Code
from deal_registration.registrations.models import (
    DealAction,
    DealRegistration,
    DealStatus,
    DealTransition,
)
from infra.clock import Clock
from infra.errors import DomainError
from infra.text import free_text_problem
from partners.roles import Principal

# The lifecycle: which statuses each action may start from, and where it leads.
# Expired approvals count as EXPIRED here (repository.effective_status), as in queries.
TRANSITIONS: dict[DealAction, tuple[frozenset[DealStatus], DealStatus]] = {
    DealAction.SUBMIT: (frozenset({DealStatus.DRAFT}), DealStatus.SUBMITTED),
    DealAction.START_REVIEW: (frozenset({DealStatus.SUBMITTED}), DealStatus.UNDER_REVIEW),
    DealAction.APPROVE: (frozenset({DealStatus.UNDER_REVIEW}), DealStatus.APPROVED),
    DealAction.REJECT: (frozenset({DealStatus.UNDER_REVIEW}), DealStatus.REJECTED),
    DealAction.WITHDRAW: (
        frozenset({DealStatus.DRAFT, DealStatus.SUBMITTED, DealStatus.UNDER_REVIEW}),
        DealStatus.WITHDRAWN,
    ),
    DealAction.MARK_WON: (frozenset({DealStatus.APPROVED}), DealStatus.WON),
    DealAction.MARK_LOST: (frozenset({DealStatus.APPROVED}), DealStatus.LOST),
    DealAction.EXPIRE: (frozenset({DealStatus.APPROVED}), DealStatus.EXPIRED),
    DealAction.REQUEST_EXTENSION: (frozenset({DealStatus.APPROVED}), DealStatus.APPROVED),
    DealAction.GRANT_EXTENSION: (frozenset({DealStatus.APPROVED}), DealStatus.APPROVED),
    DealAction.REFUSE_EXTENSION: (frozenset({DealStatus.APPROVED}), DealStatus.APPROVED),
}


async def load_registration(
    session: AsyncSession, principal: Principal, registration_id: uuid.UUID
) -> DealRegistration:
    """The registration an action applies to, if the caller may see it (its role was
    checked against the policy table on the way in), locked for the rest of the
    transaction and read anew: two actions on one registration at once (a double click, an
    approval and a rejection) take turns, and the second sees what the first did (before,
    both read the old status and both went through: ten clicks on "won" were ten DealWon
    events, ten credits)."""
    registration = await repository.get_readable(session, principal, registration_id, lock=True)
    if registration is None:
        raise DomainError(Code.NOT_FOUND, "No such deal registration.", "id")
    return registration


def check_transition(
    registration: DealRegistration, action: DealAction, now: datetime
) -> DealStatus:
    allowed_from, _to = TRANSITIONS[action]
    current = repository.effective_status(registration, now)
    if current not in allowed_from:
        raise DomainError(
            Code.INVALID_TRANSITION,
            f"A registration that is {current.value} cannot be changed by {action.value}.",
            "id",
        )
    return current


async def record_transition(
    session: AsyncSession,
    clock: Clock,
    principal: Principal | None,
    registration: DealRegistration,
    action: DealAction,
    from_status: DealStatus | None,
    reason: str = "",
) -> DealTransition:
    now = clock.now()
    transition = DealTransition(
        vendor_id=registration.vendor_id,
        registration_id=registration.id,
        action=action,
        from_status=from_status,
        to_status=registration.status,
        actor_user_id=principal.user_id if principal else None,
        actor_role=principal.role.value if principal else "SYSTEM",
        reason=reason,
        at=now,
    )
    session.add(transition)
    await session.flush()
    if from_status != registration.status:
        await notices.record_status_change(
            session, clock, vendor_id=registration.vendor_id, partner_id=registration.partner_id,
            registration_id=registration.id,
            from_status=from_status.value if from_status else None,
            to_status=registration.status.value, at=now,
        )  # fmt: skip
    return transition


async def move_protection(
    session: AsyncSession,
    clock: Clock,
    registration: DealRegistration,
    by: timedelta,
    action: DealAction,
) -> None:
    """Move an approved registration's protection end by ``by`` and record it: with no
    status change, ``record_transition`` records no ``DealStatusChanged``, so this is the
    event that tells what reads the end (a live next-actions list, webhooks). Every move
    of an approved registration's ``expires_at`` goes through here."""
    assert registration.expires_at is not None
    now = clock.now()
    previous = registration.expires_at
    registration.expires_at = previous + by
    registration.updated_at = now
    session.add(registration)
    changed = DealProtectionChanged(
        registration_id=registration.id, partner_id=registration.partner_id,
        previous_until=previous, protected_until=registration.expires_at,
        action=action.value, at=now,
    )  # fmt: skip
    await notices.record_protection_change(
        session, clock, vendor_id=registration.vendor_id, changed=changed
    )


def clean_reason(value: str, *, required: bool, name: str = "reason") -> str:
    value = value.strip()
    if required and not value:
        raise DomainError(Code.REQUIRED, "Give a reason.", name)
    if len(value) > 1000:
        raise DomainError(Code.TOO_LONG, "At most 1000 characters.", name)
    if problem := free_text_problem(value):
        raise DomainError(Code.INVALID_CHARACTERS, problem, name)
    return value


async def simple_transition(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    registration_id: uuid.UUID,
    action: DealAction,
    reason: str,
    *,
    reason_required: bool = False,
) -> DealRegistration:
    now = clock.now()
    reason = clean_reason(reason, required=reason_required)
    registration = await load_registration(session, principal, registration_id)
    current = check_transition(registration, action, now)
    registration.status = TRANSITIONS[action][1]
    registration.updated_at = now
    if action in (DealAction.REJECT,):
        registration.decided_at = now
        registration.decided_by_id = principal.user_id
        registration.decision_reason = reason
    if action in (DealAction.MARK_WON, DealAction.MARK_LOST, DealAction.WITHDRAW):
        registration.closed_at = now
    session.add(registration)
    await session.flush()
    await record_transition(session, clock, principal, registration, action, current, reason)
    return registration
