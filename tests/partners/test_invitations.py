"""Invitation rules, through the service (the GraphQL flow is tests/api/test_invitations.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

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
