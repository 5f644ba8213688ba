"""The lifecycle table: every action from every status, through the services. Allowed
transitions move the registration and are recorded; refused ones answer
INVALID_TRANSITION and change nothing."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
from sqlmodel.ext.asyncio.session import AsyncSession

from deal_registration.registrations import (
    extensions,
    lifecycle,
    outcome,
    repository,
    review,
    submission,
)
from deal_registration.registrations.errors import DealRegistrationErrorCode as Code
from deal_registration.registrations.models import (
    DealAction,
    DealExtensionRequest,
    DealRegistration,
    DealStatus,
    ExtensionStatus,
)
from infra.clock import OffsetClock
from infra.db import Database
from infra.errors import DomainError
from partners.roles import Role
from tests.deal_registration.registrations.scenarios import register, snapshot
from tests.factories import Tenant, add_products, principal_of

Action = Callable[[AsyncSession, Tenant, OffsetClock, uuid.UUID], Awaitable[DealRegistration]]


ACTIONS: dict[DealAction, Action] = {
    DealAction.SUBMIT: lambda s, t, c, i: submission.submit_draft(
        s, principal_of(t.user(Role.PARTNER_REP)), c, registration_id=i
    ),
    DealAction.START_REVIEW: lambda s, t, c, i: review.start_review(
        s, principal_of(t.user(Role.CHANNEL_MANAGER)), c, registration_id=i
    ),
    DealAction.APPROVE: lambda s, t, c, i: review.approve(
        s, principal_of(t.user(Role.CHANNEL_MANAGER)), c, registration_id=i
    ),
    DealAction.REJECT: lambda s, t, c, i: review.reject(
        s, principal_of(t.user(Role.CHANNEL_MANAGER)), c, registration_id=i, reason="No budget."
    ),
    DealAction.WITHDRAW: lambda s, t, c, i: outcome.withdraw(
        s, principal_of(t.user(Role.PARTNER_REP)), c, registration_id=i
    ),
    DealAction.MARK_WON: lambda s, t, c, i: outcome.mark_won(
        s, principal_of(t.user(Role.PARTNER_REP)), c, registration_id=i
    ),
    DealAction.MARK_LOST: lambda s, t, c, i: outcome.mark_lost(
        s, principal_of(t.user(Role.PARTNER_ADMIN)), c, registration_id=i
    ),
    DealAction.REQUEST_EXTENSION: lambda s, t, c, i: extensions.request_extension(
        s, principal_of(t.user(Role.PARTNER_REP)), c, registration_id=i, reason="Board delay."
    ),
    DealAction.GRANT_EXTENSION: lambda s, t, c, i: extensions.decide_extension(
        s, principal_of(t.user(Role.CHANNEL_MANAGER)), c, registration_id=i, grant=True
    ),
    DealAction.REFUSE_EXTENSION: lambda s, t, c, i: extensions.decide_extension(
        s, principal_of(t.user(Role.VENDOR_ADMIN)), c, registration_id=i, grant=False,
        reason="No.",
    ),
}  # fmt: skip
DECISIONS = (DealAction.GRANT_EXTENSION, DealAction.REFUSE_EXTENSION)


async def reach(db: Database, clock: OffsetClock, tenant: Tenant, status: DealStatus) -> uuid.UUID:
    """A registration of the tenant's partner 0 (by its rep) in ``status``."""
    rep = tenant.user(Role.PARTNER_REP)
    manager = tenant.user(Role.CHANNEL_MANAGER)
    if status is DealStatus.DRAFT:
        return (await register(db, clock, rep, draft=True)).id
    if status is DealStatus.SUBMITTED:
        return (await register(db, clock, rep)).id
    if status is DealStatus.UNDER_REVIEW:
        return (await register(db, clock, rep, review_as=manager)).id
    if status is DealStatus.WITHDRAWN:
        reg = await register(db, clock, rep)
        async with db.transaction() as s:
            await outcome.withdraw(s, principal_of(rep), clock, registration_id=reg.id)
        return reg.id
    if status is DealStatus.REJECTED:
        reg = await register(db, clock, rep, review_as=manager)
        async with db.transaction() as s:
            await review.reject(s, principal_of(manager), clock, registration_id=reg.id, reason="x")
        return reg.id
    reg = await register(db, clock, rep, approve_as=manager)
    if status is DealStatus.APPROVED:
        return reg.id
    if status is DealStatus.EXPIRED:
        clock.advance(timedelta(days=91))
        return reg.id
    action = outcome.mark_won if status is DealStatus.WON else outcome.mark_lost
    async with db.transaction() as s:
        await action(s, principal_of(rep), clock, registration_id=reg.id)
    return reg.id


CASES = [(status, action) for status in DealStatus for action in ACTIONS]


@pytest.mark.parametrize(("status", "action"), CASES, ids=[f"{s}-{a}" for s, a in CASES])
async def test_lifecycle_table(
    db: Database, clock: OffsetClock, tenant: Tenant, status: DealStatus, action: DealAction
) -> None:
    clock.freeze()
    async with db.transaction() as session:
        await add_products(session, clock, tenant)
    registration_id = await reach(db, clock, tenant, status)
    if action in DECISIONS:  # a decision needs a pending request, whatever the status
        async with db.transaction() as session:
            session.add(
                DealExtensionRequest(
                    vendor_id=tenant.vendor.id, registration_id=registration_id,
                    status=ExtensionStatus.PENDING, reason="Please.", requested_at=clock.now(),
                )
            )  # fmt: skip
    allowed_from, target = lifecycle.TRANSITIONS[action]
    before = await snapshot(db, registration_id)

    if status in allowed_from:
        async with db.transaction() as session:
            result = await ACTIONS[action](session, tenant, clock, registration_id)
        assert repository.effective_status(result, clock.now()) is target
        async with db.session() as session:
            history = await repository.history_of(session, registration_id)
        last = history[-1]
        assert (last.action, last.from_status, last.to_status) == (action, status, target)
        assert last.at == clock.now()
    else:
        with pytest.raises(DomainError) as caught:
            async with db.transaction() as session:
                await ACTIONS[action](session, tenant, clock, registration_id)
        assert caught.value.code is Code.INVALID_TRANSITION
        assert await snapshot(db, registration_id) == before


async def test_history_records_who_when_and_why(
    db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    clock.freeze()
    async with db.transaction() as session:
        await add_products(session, clock, tenant)
    rep = tenant.user(Role.PARTNER_REP)
    manager = tenant.user(Role.CHANNEL_MANAGER)
    reg = await register(db, clock, rep, draft=True)
    async with db.transaction() as s:
        await submission.submit_draft(s, principal_of(rep), clock, registration_id=reg.id)
    clock.advance(timedelta(hours=2))
    async with db.transaction() as s:
        await review.start_review(s, principal_of(manager), clock, registration_id=reg.id)
        await review.reject(
            s, principal_of(manager), clock, registration_id=reg.id, reason="Not a new deal."
        )
    async with db.session() as s:
        history = await repository.history_of(s, reg.id)
    assert [(h.action, h.from_status, h.to_status, h.actor_role) for h in history] == [
        (DealAction.CREATE_DRAFT, None, DealStatus.DRAFT, "PARTNER_REP"),
        (DealAction.SUBMIT, DealStatus.DRAFT, DealStatus.SUBMITTED, "PARTNER_REP"),
        (DealAction.START_REVIEW, DealStatus.SUBMITTED, DealStatus.UNDER_REVIEW, "CHANNEL_MANAGER"),
        (DealAction.REJECT, DealStatus.UNDER_REVIEW, DealStatus.REJECTED, "CHANNEL_MANAGER"),
    ]
    assert history[-1].actor_user_id == manager.id
    assert history[-1].reason == "Not a new deal."
    assert history[2].at - history[1].at == timedelta(hours=2)
