"""Demo tenancy: Northwind Devices with two partners and a user of every role, and a second
vendor, Contoso Networks, with a partner and users of its own, so that isolation shows.

Built through the services an operator and the admins use: ``vendors.create_vendor`` (the
vendor and its first admin's invitation), then invitations the admin sends, each accepted
with a demo identity (subject ``demo|<email>``). `channelboard token EMAIL` still signs
development tokens by user id."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from infra.clock import Clock
from partners import admin as partner_admin
from partners import groups, invitations, service, vendors
from partners.admin import PartnerFields
from partners.invitations import Identity, Operator
from partners.models import ManagerAssignment, Partner, User, Vendor
from partners.roles import Principal, Role

VENDOR_SLUG = "northwind"
SECOND_VENDOR_SLUG = "contoso"
OPERATOR = Operator("demo")


@dataclass(frozen=True)
class DemoTenancy:
    vendor: Vendor
    acme: Partner
    globex: Partner
    users: dict[str, User]


DEMO_USERS = (
    ("admin@northwind.example", "Nora Admin", Role.VENDOR_ADMIN, None),
    ("manager@northwind.example", "Manny Manager", Role.CHANNEL_MANAGER, None),
    ("finance@northwind.example", "Fiona Finance", Role.FINANCE, None),
    ("admin@acme.example", "Ada Acme", Role.PARTNER_ADMIN, "acme"),
    ("rep@acme.example", "Rick Acme", Role.PARTNER_REP, "acme"),
    ("admin@globex.example", "Gina Globex", Role.PARTNER_ADMIN, "globex"),
    ("rep@globex.example", "Gus Globex", Role.PARTNER_REP, "globex"),
)


async def seed(session: AsyncSession, clock: Clock) -> DemoTenancy:
    """Create the demo tenancy, or return it unchanged when it already exists."""
    vendor, admin = await _vendor(
        session, clock, name="Northwind Devices", slug=VENDOR_SLUG,
        admin=("admin@northwind.example", "Nora Admin"),
    )  # fmt: skip

    async def partner(name: str, region: str, country: str, tier: str, notes: str) -> Partner:
        found = (
            await session.exec(
                select(Partner).where(Partner.vendor_id == vendor.id, Partner.name == name)
            )
        ).first()
        return found or await _partner(
            session, clock, admin, name=name, region=region, country=country, tier=tier,
            notes=notes,
        )  # fmt: skip

    acme = await partner("Acme Resellers", "EMEA", "GB", "PREMIER", "Strong Q3; watch discounting.")
    globex = await partner("Globex Systems", "NA", "US", "SELECT", "Payment terms under review.")
    partners = {"acme": acme, "globex": globex}

    users: dict[str, User] = {admin.email: admin}
    for email, name, role, partner_key in DEMO_USERS[1:]:
        partner_id = partners[partner_key].id if partner_key else None
        users[email] = await _user(session, clock, admin, email, name, role, partner_id)

    manager = users["manager@northwind.example"]
    assigned = (
        await session.exec(
            select(ManagerAssignment).where(
                ManagerAssignment.manager_id == manager.id, ManagerAssignment.partner_id == acme.id
            )
        )
    ).first()
    if assigned is None:
        await service.assign_manager(session, clock, manager=manager, partner=acme)
    return DemoTenancy(vendor=vendor, acme=acme, globex=globex, users=users)


async def _vendor(
    session: AsyncSession, clock: Clock, *, name: str, slug: str, admin: tuple[str, str]
) -> tuple[Vendor, User]:
    """The vendor and its first admin: created as the operator creates one, the invitation
    accepted by the admin's demo identity."""
    email, display_name = admin
    vendor = await vendors.find_vendor(session, slug)
    if vendor is None:
        created = await vendors.create_vendor(
            session, clock, name=name, slug=slug, admin_email=email, operator=OPERATOR
        )
        vendor = created.vendor
        user = await _accept(session, clock, created.invitation.token, email, display_name)
        return vendor, user
    found = (await session.exec(select(User).where(User.email == email))).first()
    assert found is not None, f"demo vendor {slug!r} without its admin"
    return vendor, found


async def _partner(
    session: AsyncSession,
    clock: Clock,
    admin: User,
    *,
    name: str,
    region: str,
    country: str,
    tier: str | None,
    notes: str,
) -> Partner:
    """A partner created as a vendor admin creates one (``partnerCreate``: audited, its group
    memberships evaluated), its program tier set as ``partnerTierSet`` sets it (with
    history), and the demo's internal notes."""
    principal = Principal(vendor_id=admin.vendor_id, role=admin.role, user_id=admin.id)
    change = await partner_admin.add_partner(
        session, principal, clock, fields=PartnerFields(name=name, region=region, country=country)
    )
    partner = change.partner
    if tier is not None:
        await groups.set_program_tier(
            session, principal, clock, partner_id=partner.id, tier=tier, reason="demo"
        )
    partner.internal_notes = notes
    session.add(partner)
    await session.flush()
    return partner


async def _user(
    session: AsyncSession,
    clock: Clock,
    admin: User,
    email: str,
    name: str,
    role: Role,
    partner_id: uuid.UUID | None,
) -> User:
    """A demo user, invited by the vendor's admin and accepted (or the existing one)."""
    found = (await session.exec(select(User).where(User.email == email))).first()
    if found is not None:
        return found
    inviter = Principal(vendor_id=admin.vendor_id, role=admin.role, user_id=admin.id)
    issued = await invitations.create_invitation(
        session, inviter, clock, email=email, role=role, partner_id=partner_id
    )
    return await _accept(session, clock, issued.token, email, name)


async def _accept(session: AsyncSession, clock: Clock, token: str, email: str, name: str) -> User:
    identity = Identity(subject=f"demo|{email}", email=email, email_verified=True)
    return await invitations.accept_invitation(
        session, identity, clock, token=token, display_name=name
    )


@dataclass(frozen=True)
class SecondVendor:
    vendor: Vendor
    partner: Partner
    users: dict[str, User]


SECOND_VENDOR_USERS = (
    ("admin@contoso.example", "Carla Contoso", Role.VENDOR_ADMIN, False),
    ("admin@fabrikam.example", "Fay Fabrikam", Role.PARTNER_ADMIN, True),
    ("rep@fabrikam.example", "Fred Fabrikam", Role.PARTNER_REP, True),
)


async def seed_second_vendor(session: AsyncSession, clock: Clock) -> SecondVendor:
    """Contoso Networks with its admin and one partner, Fabrikam Solutions (an admin and a
    rep): nothing of it is visible to Northwind's users, nor theirs to it."""
    email, name, _role, _ = SECOND_VENDOR_USERS[0]
    vendor, admin = await _vendor(
        session, clock, name="Contoso Networks", slug=SECOND_VENDOR_SLUG, admin=(email, name)
    )
    partner = (
        await session.exec(
            select(Partner).where(
                Partner.vendor_id == vendor.id, Partner.name == "Fabrikam Solutions"
            )
        )
    ).first() or await _partner(
        session, clock, admin, name="Fabrikam Solutions", region="APAC", country="AU",
        tier=None, notes="Pilot partner for Contoso.",
    )  # fmt: skip
    users: dict[str, User] = {admin.email: admin}
    for email, name, role, of_partner in SECOND_VENDOR_USERS[1:]:
        partner_id = partner.id if of_partner else None
        users[email] = await _user(session, clock, admin, email, name, role, partner_id)
    return SecondVendor(vendor=vendor, partner=partner, users=users)
