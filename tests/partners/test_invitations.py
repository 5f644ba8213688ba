"""Invitation rules, through the service (the GraphQL flow is tests/api/test_invitations.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from enum import Enum
from typing import Any

import pytest
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from infra.audit import AuditEntry
from infra.clock import OffsetClock
from infra.db import Database
from infra.errors import DomainError, Forbidden
from partners import invitations
from partners.errors import InvitationErrorCode as Code
from partners.invitations import Identity, Operator
from partners.models import Invitation, InvitationStatus, User
from partners.roles import Role
from tests.factories import Tenant


async def test_an_operator_invites_a_vendors_first_admin_who_accepts(
    db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    async with db.transaction() as session:
        issued = await invitations.create_invitation(
            session, Operator("ops"), clock, vendor_id=tenant.vendor.id,
            email="  First.Admin@Example.COM ", role=Role.VENDOR_ADMIN,
        )  # fmt: skip
    assert issued.invitation.email == "first.admin@example.com"
    assert issued.invitation.invited_by == "operator:ops"
    assert issued.invitation.token_hash == invitations.token_hash(issued.token)
    assert issued.token not in issued.invitation.token_hash
    async with db.transaction() as session:
        user = await invitations.accept_invitation(
            session, Identity("idp|1", None, False), clock, token=issued.token
        )
    assert (user.vendor_id, user.role, user.email) == (
        tenant.vendor.id, Role.VENDOR_ADMIN, "first.admin@example.com"
    )  # fmt: skip
    async with db.read_session() as session:
        stored = await session.get(Invitation, issued.invitation.id)
    assert stored is not None
    assert (stored.status, stored.accepted_user_id) == (InvitationStatus.ACCEPTED, user.id)
    async with db.read_session() as session:
        entries = (await session.exec(select(AuditEntry).order_by(AuditEntry.id))).all()
    assert [(e.actor, e.action) for e in entries] == [
        ("operator:ops", "invitation.created"),
        (f"user:{user.id}", "invitation.accepted"),
        (f"user:{user.id}", "user.created"),
    ]
    assert entries[0].after is not None
    assert entries[0].after["email"] == "first.admin@example.com"
    assert issued.token not in str([e.after for e in entries])


async def test_a_role_without_the_operation_is_refused_by_the_service(
    db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    async with db.transaction() as session:
        with pytest.raises(Forbidden):
            await invitations.create_invitation(
                session, tenant.principal(Role.CHANNEL_MANAGER), clock,
                email="x@example.com", role=Role.FINANCE,
            )  # fmt: skip


@pytest.mark.parametrize(
    ("role", "partner", "code"),
    [
        (Role.PARTNER_REP, None, Code.REQUIRED),
        (Role.FINANCE, 0, Code.INVALID),
    ],
)
async def test_partner_roles_need_a_partner_and_vendor_roles_none(
    db: Database, clock: OffsetClock, tenant: Tenant, role: Role, partner: int | None, code: Code
) -> None:
    async with db.transaction() as session:
        with pytest.raises(DomainError) as raised:
            await invitations.create_invitation(
                session, tenant.principal(Role.VENDOR_ADMIN), clock, email="x@example.com",
                role=role, partner_id=None if partner is None else tenant.partners[partner].id,
            )  # fmt: skip
    assert raised.value.code is code


async def test_an_expired_invitation_can_be_resent_and_the_old_token_is_dead(
    db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    admin = tenant.principal(Role.VENDOR_ADMIN)
    async with db.transaction() as session:
        first = await invitations.create_invitation(
            session, admin, clock, email="late@example.com", role=Role.FINANCE, expires_in_days=1
        )
    clock.advance(timedelta(days=2))
    async with db.transaction() as session:
        with pytest.raises(DomainError) as raised:
            await invitations.accept_invitation(
                session, Identity("idp|late", None, False), clock, token=first.token
            )
    assert raised.value.code is Code.INVITATION_EXPIRED
    async with db.transaction() as session:
        second = await invitations.resend_invitation(
            session, admin, clock, invitation_id=first.invitation.id
        )
    async with db.transaction() as session:
        with pytest.raises(DomainError) as raised:
            await invitations.accept_invitation(
                session, Identity("idp|late", None, False), clock, token=first.token
            )
    assert raised.value.code is Code.INVALID_TOKEN
    async with db.transaction() as session:
        user = await invitations.accept_invitation(
            session, Identity("idp|late", None, False), clock, token=second.token
        )
    async with db.read_session() as session:
        found = (await session.exec(select(User).where(User.email == "late@example.com"))).all()
    assert [u.id for u in found] == [user.id]


# --- Concurrent accepts on PostgreSQL (READ COMMITTED: each statement sees what committed
# before it). The late accept's session stops after its n-th query until the other accept
# has committed, which forces the interleaving a loaded machine produced now and then.


def stop_after_query(
    session: AsyncSession, monkeypatch: pytest.MonkeyPatch, n: int
) -> tuple[asyncio.Event, asyncio.Event]:
    """``(stopped, go)``: ``stopped`` is set once the session's ``n``-th ``exec`` has
    returned; it then waits for ``go``."""
    stopped, go = asyncio.Event(), asyncio.Event()
    original: Callable[..., Awaitable[Any]] = session.exec
    count = 0

    async def exec_then_wait(*args: Any, **kwargs: Any) -> Any:
        nonlocal count
        result = await original(*args, **kwargs)
        count += 1
        if count == n:
            stopped.set()
            await go.wait()
        return result

    monkeypatch.setattr(session, "exec", exec_then_wait)
    return stopped, go


async def race(
    db: Database,
    clock: OffsetClock,
    monkeypatch: pytest.MonkeyPatch,
    *,
    late_token: str,
    stop_after: int,
    first_token: str | None = None,
    first: Callable[[AsyncSession], Awaitable[object]] | None = None,
) -> Enum:
    """The late accept runs until its ``stop_after``-th query, the first transaction (an
    accept of ``first_token``, or ``first``) runs and commits, then the late one goes on;
    returns the code the late one was refused with."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL: SQLite's write lock serialises the two")

    async def late() -> Enum:
        try:
            async with db.transaction() as session:  # rolled back by the refusal
                started.set_result(stop_after_query(session, monkeypatch, stop_after))
                await invitations.accept_invitation(
                    session, Identity("idp|late", None, False), clock, token=late_token
                )
        except DomainError as refused:
            return refused.code
        raise AssertionError("the late accept was not refused")

    started: asyncio.Future[tuple[asyncio.Event, asyncio.Event]] = asyncio.Future()
    task = asyncio.create_task(late())
    stopped, go = await started
    await asyncio.wait_for(stopped.wait(), 10)
    async with db.transaction() as session:
        if first is not None:
            await first(session)
        else:
            await invitations.accept_invitation(
                session, Identity("idp|first", None, False), clock, token=first_token or ""
            )
    go.set()
    return await asyncio.wait_for(task, 10)


async def test_an_accept_that_read_the_invitation_before_another_committed_finds_it_used(
    db: Database, clock: OffsetClock, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The late accept read the invitation as PENDING; the other's user is committed before
    its next query. It is told the invitation was used (it was checking the e-mail address
    next, and was told DUPLICATE_EMAIL)."""
    async with db.transaction() as session:
        issued = await invitations.create_invitation(
            session, tenant.principal(Role.VENDOR_ADMIN), clock, email="race@example.com",
            role=Role.FINANCE,
        )  # fmt: skip
    code = await race(
        db, clock, monkeypatch, late_token=issued.token, first_token=issued.token, stop_after=1
    )
    assert code is Code.INVITATION_USED
    async with db.read_session() as session:
        found = (await session.exec(select(User).where(User.email == "race@example.com"))).all()
    assert len(found) == 1


async def test_two_invitations_of_one_address_accepted_at_once_make_one_user(
    db: Database, clock: OffsetClock, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The late accept found no user with the address; the other's is committed before it
    inserts its own. Refused as DUPLICATE_EMAIL, as when they come one after the other (the
    unique address, not the sign-in, is what was taken)."""
    admin = tenant.principal(Role.VENDOR_ADMIN)
    async with db.transaction() as session:
        first = await invitations.create_invitation(
            session, admin, clock, email="twice@example.com", role=Role.FINANCE
        )
        second = await invitations.create_invitation(
            session, admin, clock, email="twice@example.com", role=Role.CHANNEL_MANAGER
        )
    code = await race(
        db, clock, monkeypatch, late_token=second.token, first_token=first.token, stop_after=2
    )
    assert code is Code.DUPLICATE_EMAIL
    async with db.read_session() as session:
        found = (await session.exec(select(User).where(User.email == "twice@example.com"))).all()
        statuses = (
            await session.exec(
                select(Invitation.status).where(Invitation.email == "twice@example.com")
            )
        ).all()
    assert [u.role for u in found] == [Role.FINANCE]
    assert sorted(statuses) == [InvitationStatus.ACCEPTED, InvitationStatus.PENDING]


@pytest.mark.parametrize("change", ["revoke", "resend"])
async def test_a_revoke_or_resend_that_read_the_invitation_before_an_accept_wins_or_loses_whole(
    db: Database,
    clock: OffsetClock,
    tenant: Tenant,
    monkeypatch: pytest.MonkeyPatch,
    change: str,
) -> None:
    """The admin's change has read the invitation (PENDING) when an accept comes. Before,
    the accept committed and the change then wrote over it: a revoked invitation whose
    user signs in, or a new token for an accepted one. Now the change holds the row: the
    accept waits, then finds the invitation revoked or its token replaced, and is refused
    as when it came after the change (it was told INVITATION_USED, "already accepted")."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL: SQLite's write lock serialises the two")
    admin = tenant.principal(Role.VENDOR_ADMIN)
    async with db.transaction() as session:
        issued = await invitations.create_invitation(
            session, admin, clock, email="late@example.com", role=Role.FINANCE
        )
    invitation_id = issued.invitation.id

    async def changed() -> None:
        async with db.transaction() as session:
            started.set_result(stop_after_query(session, monkeypatch, 1))
            if change == "revoke":
                await invitations.revoke_invitation(
                    session, admin, clock, invitation_id=invitation_id
                )
            else:
                await invitations.resend_invitation(
                    session, admin, clock, invitation_id=invitation_id
                )

    async def accepted() -> Enum | None:
        try:
            async with db.transaction() as session:
                await invitations.accept_invitation(
                    session, Identity("idp|late", None, False), clock, token=issued.token
                )
        except DomainError as refused:
            return refused.code
        return None

    started: asyncio.Future[tuple[asyncio.Event, asyncio.Event]] = asyncio.Future()
    changing = asyncio.create_task(changed())
    stopped, go = await started
    await asyncio.wait_for(stopped.wait(), 10)
    accepting = asyncio.create_task(accepted())
    await asyncio.wait({accepting}, timeout=1.0)  # done before (the defect), or waiting
    go.set()
    await asyncio.wait_for(changing, 10)
    expected = Code.INVITATION_REVOKED if change == "revoke" else Code.INVALID_TOKEN
    assert await asyncio.wait_for(accepting, 10) is expected
    async with db.read_session() as session:
        users = (await session.exec(select(User).where(User.email == "late@example.com"))).all()
        status = (
            await session.exec(select(Invitation.status).where(Invitation.id == invitation_id))
        ).one()
    assert users == []
    assert status is (InvitationStatus.REVOKED if change == "revoke" else InvitationStatus.PENDING)


async def test_an_accept_that_read_the_invitation_before_a_revoke_committed_finds_it_revoked(
    db: Database, clock: OffsetClock, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The accept read the invitation as PENDING; a revoke commits before its claim, which
    then matches nothing. It is told the invitation was revoked (it was told
    INVITATION_USED, "already accepted"), and no user is made."""
    admin = tenant.principal(Role.VENDOR_ADMIN)
    async with db.transaction() as session:
        issued = await invitations.create_invitation(
            session, admin, clock, email="revoked@example.com", role=Role.FINANCE
        )

    async def revoke(session: AsyncSession) -> object:
        return await invitations.revoke_invitation(
            session, admin, clock, invitation_id=issued.invitation.id
        )

    code = await race(db, clock, monkeypatch, late_token=issued.token, stop_after=1, first=revoke)
    assert code is Code.INVITATION_REVOKED
    async with db.read_session() as session:
        users = (await session.exec(select(User).where(User.email == "revoked@example.com"))).all()
        stored = await session.get(Invitation, issued.invitation.id)
    assert users == []
    assert stored is not None
    assert stored.status is InvitationStatus.REVOKED
