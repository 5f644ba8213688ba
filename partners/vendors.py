"""The operator's tenant administration (``channelboard vendors …``): create a vendor with its
first admin, list vendors, suspend and reactivate one.

These run with no principal - the operator acts on the database directly through the CLI,
never through GraphQL - and are recorded in the audit log as ``operator:<login>``. A
suspended vendor's users and API keys are refused at authentication
(``AuthFailure("VENDOR_SUSPENDED")``), and its open websockets close (the vendor table is one
of ``api.auth.PRINCIPAL_TABLES``); its data is kept and comes back with reactivation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from infra import audit
from infra.clock import Clock
from infra.errors import DomainError
from infra.text import identifier_problem, name_problem
from partners import invitations, repository, service
from partners.errors import VendorErrorCode as Code
from partners.invitations import IssuedInvitation, Operator
from partners.models import Invitation, InvitationStatus, Partner, User, Vendor, VendorStatus
from partners.roles import Role

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_NAME = 200
MAX_REASON = 500


@dataclass(frozen=True)
class VendorRow:
    vendor: Vendor
    users: int
    partners: int


@dataclass(frozen=True)
class CreatedVendor:
    vendor: Vendor
    invitation: IssuedInvitation  # for its first VENDOR_ADMIN
    existed: bool = False  # made by an earlier run; the invitation has a new token


async def _unclaimed(
    session: AsyncSession, vendor: Vendor, *, name: str, email: str
) -> Invitation | None:
    """The first-admin invitation of ``vendor`` when the vendor is still exactly what
    ``create_vendor`` with these arguments made (its name, no user, no other invitation,
    that one still pending, the vendor active), locked with the vendor; else None."""
    locked = await _locked(session, vendor.slug)
    if locked.name != name or locked.status is not VendorStatus.ACTIVE:
        return None
    if (await session.exec(select(User.id).where(User.vendor_id == locked.id))).first():
        return None
    found = list(
        await session.exec(
            select(Invitation).where(Invitation.vendor_id == locked.id).with_for_update()
        )
    )
    if len(found) != 1:
        return None
    [invitation] = found
    pending = invitation.status is InvitationStatus.PENDING
    if not pending or invitation.role is not Role.VENDOR_ADMIN or invitation.email != email:
        return None
    return invitation


async def create_vendor(
    session: AsyncSession,
    clock: Clock,
    *,
    name: str,
    slug: str,
    admin_email: str,
    operator: Operator,
) -> CreatedVendor:
    """A new vendor and an invitation for its first VENDOR_ADMIN (accepted with an
    identity-provider token: ``invitationAccept``). Bad input raises ``DomainError`` and
    writes nothing."""
    name, slug, email = name.strip(), slug.strip(), admin_email.strip().lower()
    if not name or len(name) > MAX_NAME:
        raise DomainError(
            Code.INVALID_NAME, f"A vendor name has 1 to {MAX_NAME} characters.", "name"
        )
    if problem := name_problem(name):
        raise DomainError(Code.INVALID_CHARACTERS, problem, "name")
    if not SLUG.fullmatch(slug):
        raise DomainError(
            Code.INVALID_SLUG,
            "A slug is 1 to 64 lower-case letters, digits and inner hyphens (e.g. 'acme-corp').",
            "slug",
        )
    if problem := identifier_problem(email):
        raise DomainError(Code.INVALID_CHARACTERS, problem, "email")
    if not EMAIL.fullmatch(email) or len(email) > 254:
        raise DomainError(Code.INVALID_EMAIL, f"{admin_email!r} is not an e-mail address.", "email")
    if (existing := await find_vendor(session, slug)) is not None:
        # The same command run again (the first run's token was never shown: its process
        # died after the commit, or its output was lost): the same vendor, a new token.
        resumed = await _unclaimed(session, existing, name=name, email=email)
        if resumed is None:
            raise DomainError(Code.DUPLICATE_SLUG, f"A vendor with slug {slug!r} exists.", "slug")
        issued = await invitations.reissue_first_admin_invitation(session, operator, clock, resumed)
        return CreatedVendor(existing, issued, existed=True)
    if await repository.get_user_by_email(session, email) is not None:
        raise DomainError(Code.DUPLICATE_EMAIL, f"A user with e-mail {email!r} exists.", "email")
    vendor = await service.create_vendor(session, clock, name=name, slug=slug)
    await _audit(session, clock, operator, "vendor.created", vendor, None,
                 {"name": vendor.name, "slug": vendor.slug}, None)  # fmt: skip
    invitation = await invitations.create_invitation(
        session, operator, clock, email=email, role=Role.VENDOR_ADMIN, vendor_id=vendor.id
    )
    return CreatedVendor(vendor, invitation)


async def find_vendor(session: AsyncSession, slug: str) -> Vendor | None:
    return (await session.exec(select(Vendor).where(Vendor.slug == slug.strip()))).first()


async def list_vendors(session: AsyncSession) -> list[VendorRow]:
    users = select(User.vendor_id, func.count().label("n")).group_by(col(User.vendor_id)).subquery()
    partners = (
        select(Partner.vendor_id, func.count().label("n"))
        .group_by(col(Partner.vendor_id))
        .subquery()
    )
    rows = await session.exec(
        select(Vendor, users.c.n, partners.c.n)
        .outerjoin(users, users.c.vendor_id == Vendor.id)
        .outerjoin(partners, partners.c.vendor_id == Vendor.id)
        .order_by(col(Vendor.slug))
    )
    return [VendorRow(vendor, u or 0, p or 0) for vendor, u, p in rows]


async def suspend_vendor(
    session: AsyncSession, clock: Clock, *, slug: str, reason: str, operator: Operator
) -> Vendor:
    reason = reason.strip()
    if not reason or len(reason) > MAX_REASON:
        raise DomainError(
            Code.REASON_REQUIRED, f"Give a reason (1 to {MAX_REASON} characters).", "reason"
        )
    vendor = await _locked(session, slug)
    if vendor.status is VendorStatus.SUSPENDED:
        raise DomainError(Code.ALREADY_SUSPENDED, f"{slug!r} is already suspended.", "slug")
    vendor.status = VendorStatus.SUSPENDED
    vendor.suspended_reason = reason
    vendor.suspended_at = clock.now()
    session.add(vendor)
    await session.flush()
    await _audit(session, clock, operator, "vendor.suspended", vendor,
                 {"status": VendorStatus.ACTIVE}, {"status": vendor.status}, reason)  # fmt: skip
    return vendor


async def reactivate_vendor(
    session: AsyncSession, clock: Clock, *, slug: str, operator: Operator
) -> Vendor:
    vendor = await _locked(session, slug)
    if vendor.status is not VendorStatus.SUSPENDED:
        raise DomainError(Code.NOT_SUSPENDED, f"{slug!r} is not suspended.", "slug")
    vendor.status = VendorStatus.ACTIVE
    vendor.suspended_reason = None
    vendor.suspended_at = None
    session.add(vendor)
    await session.flush()
    await _audit(session, clock, operator, "vendor.reactivated", vendor,
                 {"status": VendorStatus.SUSPENDED}, {"status": vendor.status}, None)  # fmt: skip
    return vendor


async def _audit(
    session: AsyncSession,
    clock: Clock,
    operator: Operator,
    action: str,
    vendor: Vendor,
    before: dict[str, object] | None,
    after: dict[str, object] | None,
    reason: str | None,
) -> None:
    await audit.record(
        session, vendor_id=vendor.id, actor=operator.caller, action=action,
        entity_type="vendor", entity_id=str(vendor.id), before=before, after=after,
        reason=reason, at=clock.now(),
    )  # fmt: skip


async def _locked(session: AsyncSession, slug: str) -> Vendor:
    found = await session.exec(select(Vendor).where(Vendor.slug == slug.strip()).with_for_update())
    vendor = found.first()
    if vendor is None:
        raise DomainError(Code.NOT_FOUND, f"No vendor with slug {slug!r}.", "slug")
    return vendor
