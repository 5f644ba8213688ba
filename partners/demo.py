"""Demo tenancy: Northwind Devices with two partners and a user of every role."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from infra.clock import Clock
from partners import service
from partners.models import ManagerAssignment, Partner, User, Vendor
from partners.roles import Role

VENDOR_SLUG = "northwind"


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
    vendor = (await session.exec(select(Vendor).where(Vendor.slug == VENDOR_SLUG))).first()
    if vendor is None:
        vendor = await service.create_vendor(
            session, clock, name="Northwind Devices", slug=VENDOR_SLUG
        )

    async def partner(name: str, region: str, tier: str, notes: str) -> Partner:
        found = (
            await session.exec(
                select(Partner).where(Partner.vendor_id == vendor.id, Partner.name == name)
            )
        ).first()
        return found or await service.create_partner(
            session, clock, vendor_id=vendor.id, name=name, region=region, tier=tier,
            internal_notes=notes,
        )  # fmt: skip

    acme = await partner("Acme Resellers", "EMEA", "PREMIER", "Strong Q3; watch discounting.")
    globex = await partner("Globex Systems", "NA", "SELECT", "Payment terms under review.")
    partners = {"acme": acme, "globex": globex}

    users: dict[str, User] = {}
    for email, name, role, partner_key in DEMO_USERS:
        user = (await session.exec(select(User).where(User.email == email))).first()
        if user is None:
            user = await service.create_user(
                session, clock, vendor_id=vendor.id, email=email, role=role, display_name=name,
                partner_id=partners[partner_key].id if partner_key else None,
            )  # fmt: skip
        users[email] = user

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
