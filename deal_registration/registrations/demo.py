"""Demo deal registrations for Acme and Globex, including a conflicting pair: Globex
registers "Initech, L.L.C." (www.initech.com) after Acme's "Initech LLC" (initech.com) was
approved and protected."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from deal_registration.registrations import review, submission
from deal_registration.registrations.models import DealRegistration, DealStatus
from infra.clock import Clock
from partners.demo import DemoTenancy
from partners.models import User
from partners.roles import Principal

DEMO_DEALS = (
    # key, user, customer, domain, country, value (cents), lines, contact, then
    ("demo-acme-initech", "rep@acme.example", "Initech LLC", "initech.com", "DE", 7_450_000,
     (("NW-SWITCH-48", 20), ("NW-CARE-3Y", 20)), ("Bill Lumbergh", "bill@initech.com"),
     "approve"),
    ("demo-acme-umbrella", "admin@acme.example", "Umbrella Holdings Ltd", "umbrella.co.uk", "GB",
     2_290_000, (("NW-FW-500", 4), ("NW-AP-6E", 10)), None, "submit"),
    ("demo-globex-initech", "rep@globex.example", "Initech, L.L.C.", "https://www.initech.com",
     "DE", 6_900_000, (("NW-SWITCH-48", 18),), ("Peter Gibbons", "peter@initech.com"), "review"),
    ("demo-globex-hooli", "admin@globex.example", "Hooli Inc.", "hooli.xyz", "US", 1_299_000,
     (("NW-ROUTER-X1", 10),), None, "draft"),
)  # fmt: skip


def _principal(user: User) -> Principal:
    return Principal(
        vendor_id=user.vendor_id, role=user.role, user_id=user.id, partner_id=user.partner_id,
        email=user.email,
    )  # fmt: skip


async def seed(session: AsyncSession, clock: Clock, tenancy: DemoTenancy) -> list[DealRegistration]:
    """Idempotent: a registration its user made for the customer already is not made again
    (idempotency keys expire; a rerun weeks later must not register the deals twice)."""
    manager = _principal(tenancy.users["manager@northwind.example"])
    admin = _principal(tenancy.users["admin@northwind.example"])
    close = clock.now().date() + timedelta(days=45)
    out = []
    for key, email, name, domain, country, value, lines, contact, then in DEMO_DEALS:
        user = tenancy.users[email]
        existing = (
            await session.exec(
                select(DealRegistration).where(
                    DealRegistration.vendor_id == user.vendor_id,
                    DealRegistration.registered_by_id == user.id,
                    DealRegistration.customer_name == name,
                )
            )
        ).first()
        if existing is not None:
            out.append(existing)
            continue
        data = submission.RegistrationInput(
            customer_name=name, customer_domain=domain, customer_country=country,
            estimated_value_minor=value, currency="USD", expected_close_date=close,
            lines=[submission.LineInput(sku=sku, quantity=q) for sku, q in lines],
            contact_name=contact[0] if contact else "", contact_email=contact[1] if contact else "",
        )  # fmt: skip
        registration = await submission.submit_registration(
            session, _principal(user), clock, data=data, draft=then == "draft", idempotency_key=key
        )
        fresh = registration.status is DealStatus.SUBMITTED and not registration.decided_at
        if fresh and then in ("approve", "review"):
            # Acme is the channel manager's partner; Globex is reviewed by the vendor admin.
            reviewer = manager if email.endswith("@acme.example") else admin
            registration = await review.start_review(
                session, reviewer, clock, registration_id=registration.id
            )
            if then == "approve":
                registration = await review.approve(
                    session, reviewer, clock, registration_id=registration.id,
                    reason="Registered first; protected for the program period.",
                )  # fmt: skip
        out.append(registration)
    return out
