"""Users' administration: change a role, deactivate, reactivate.

Effective at once: authentication's principal cache drops on any write to the users table,
and open websockets are re-checked then (``api.ws_sessions``) and closed with 4403.

Who may act on whom: the ``USERS`` policy table (admins), then row-level - a vendor admin
any user of its vendor, a partner admin its own organisation's users
(``repository.readable_users``); only vendor roles may be given to vendor staff, only partner
roles to a partner's users, and a partner admin may not make anyone vendor staff. Nobody
changes or deactivates itself.

The last active admin of a vendor (VENDOR_ADMIN) or of a partner (PARTNER_ADMIN) cannot be
demoted or deactivated (LAST_ADMIN). Two admins demoting each other at once must leave one:
every change takes the vendor's row lock first (``SELECT … FOR UPDATE`` on PostgreSQL; on
SQLite the write transaction holds the database's write lock from its start), so the second
change counts the admins after the first committed.
"""

from __future__ import annotations

import uuid

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from infra import audit
from infra.clock import Clock
from infra.errors import DomainError
from infra.text import free_text_problem
from partners import repository
from partners.errors import UserAccountErrorCode as Code
from partners.models import User, Vendor
from partners.policy import USERS, UserOp
from partners.roles import PARTNER_ROLES, VENDOR_ROLES, Principal, Role

ADMIN_ROLES = frozenset({Role.VENDOR_ADMIN, Role.PARTNER_ADMIN})
MAX_REASON = 500


async def change_role(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    user_id: uuid.UUID,
    role: Role,
    reason: str | None = None,
) -> User:
    USERS.require(principal, UserOp.USER_ROLE_CHANGE)
    reason = _reason(reason)
    user = await _target(session, principal, user_id)
    allowed = PARTNER_ROLES if user.partner_id is not None else VENDOR_ROLES
    if role not in allowed:
        raise DomainError(
            Code.INVALID_ROLE,
            "A partner's user takes a partner role, vendor staff a vendor role.",
            "role",
        )
    if user.role is role:
        return user
    await _keep_an_admin(session, user)
    before: dict[str, object] = {"role": user.role.value}
    user.role = role
    session.add(user)
    await session.flush()
    await _audit(session, principal, clock, "user.role_changed", user, before, reason)
    return user


async def deactivate(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    user_id: uuid.UUID,
    reason: str | None = None,
) -> User:
    USERS.require(principal, UserOp.USER_DEACTIVATE)
    reason = _reason(reason)
    user = await _target(session, principal, user_id)
    if not user.active:
        raise DomainError(Code.ALREADY_INACTIVE, "This user is already deactivated.", "id")
    await _keep_an_admin(session, user)
    user.active = False
    session.add(user)
    await session.flush()
    await _audit(session, principal, clock, "user.deactivated", user, {"active": True}, reason)
    return user


async def reactivate(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    user_id: uuid.UUID,
    reason: str | None = None,
) -> User:
    USERS.require(principal, UserOp.USER_REACTIVATE)
    reason = _reason(reason)
    user = await _target(session, principal, user_id)
    if user.active:
        raise DomainError(Code.ALREADY_ACTIVE, "This user is already active.", "id")
    user.active = True
    session.add(user)
    await session.flush()
    await _audit(session, principal, clock, "user.reactivated", user, {"active": False}, reason)
    return user


def _reason(reason: str | None) -> str | None:
    reason = (reason or "").strip() or None
    if reason is not None and len(reason) > MAX_REASON:
        raise DomainError(Code.TOO_LONG, f"A reason has at most {MAX_REASON} characters.", "reason")
    if reason is not None and (problem := free_text_problem(reason)):
        raise DomainError(Code.INVALID_CHARACTERS, problem, "reason")
    return reason


async def _target(session: AsyncSession, principal: Principal, user_id: uuid.UUID) -> User:
    """The user to change, after the vendor's row lock; NOT_FOUND when the caller may not
    see it (another vendor's, another partner's) exactly as when it does not exist."""
    await session.exec(select(Vendor.id).where(Vendor.id == principal.vendor_id).with_for_update())
    found = await session.exec(
        repository.readable_users(principal).where(User.id == user_id).with_for_update()
    )
    user = found.first()
    if user is None:
        raise DomainError(Code.NOT_FOUND, "No such user.", "id")
    if user.id == principal.user_id:
        raise DomainError(
            Code.SELF_CHANGE, "You cannot change your own role or deactivate yourself.", "id"
        )
    return user


async def _keep_an_admin(session: AsyncSession, user: User) -> None:
    """Refuse to remove ``user`` from the admins when it is the last active one of its
    vendor (VENDOR_ADMIN) or partner (PARTNER_ADMIN)."""
    if not user.active or user.role not in ADMIN_ROLES:
        return
    others = (
        select(func.count())
        .select_from(User)
        .where(
            User.vendor_id == user.vendor_id,
            User.role == user.role,
            col(User.active).is_(True),
            User.id != user.id,
        )
    )
    if user.role is Role.PARTNER_ADMIN:
        others = others.where(User.partner_id == user.partner_id)
    if (await session.exec(others)).one() == 0:
        whose = "partner" if user.role is Role.PARTNER_ADMIN else "vendor"
        raise DomainError(
            Code.LAST_ADMIN,
            f"This is the {whose}'s last active admin: make someone else admin first.",
            "id",
        )


async def _audit(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    action: str,
    user: User,
    before: dict[str, object],
    reason: str | None,
) -> None:
    """Record the change in the audit log, in the same transaction."""
    await audit.record(
        session, vendor_id=user.vendor_id, actor=principal.caller, action=action,
        entity_type="user", entity_id=str(user.id), before=before,
        after={key: getattr(user, key) for key in before}, reason=reason, at=clock.now(),
    )  # fmt: skip
