"""The outbox events of partner administration, recorded in the transaction of the change:
``PartnerApplied`` for an application to a real vendor (none for an unknown slug, so no
event tells anything about which slugs exist), ``PartnerEnrolled`` for a partner created by
staff, by an approved application (with its id) or by a CSV import."""

from __future__ import annotations

from sqlmodel import col, select

from infra.db import Database
from infra.outbox import OutboxEvent
from partners.events import PARTNER_APPLIED, PARTNER_ENROLLED, PartnerApplied, PartnerEnrolled
from partners.roles import Role
from tests.factories import Tenant, gid
from tests.partners.test_partner_applications import APPROVE, _apply, form
from tests.partners.test_partner_import import GOOD, _upload
from tests.support import GQL

CREATE = """mutation($input: PartnerCreateInput!) { partnerCreate(input: $input) {
  partner { id } userErrors { code } } }"""


async def events(db: Database, type_: str) -> list[OutboxEvent]:
    async with db.session() as session:
        rows = await session.exec(
            select(OutboxEvent).where(OutboxEvent.type == type_).order_by(col(OutboxEvent.id))
        )
        return list(rows)


async def test_applied_then_enrolled_through_the_application(
    gql: GQL, db: Database, tenant: Tenant
) -> None:
    assert (await _apply(gql, form(None)))["userErrors"] == []  # an unknown slug: no event
    assert await events(db, PARTNER_APPLIED) == []

    assert (await _apply(gql, form(tenant)))["userErrors"] == []
    [event] = await events(db, PARTNER_APPLIED)
    applied = PartnerApplied.parse(event.payload)
    assert event.vendor_id == tenant.vendor.id
    assert (applied.company, applied.contact_email, applied.country) == (
        "Hooli Resellers", "gavin@hooli.example", "US"
    )  # fmt: skip

    approved = await gql.data(
        APPROVE,
        {"input": {"id": gid("PartnerApplication", applied.application_id), "region": "NA"}},
        as_user=tenant.user(Role.VENDOR_ADMIN),
    )
    assert approved["partnerApplicationApprove"]["userErrors"] == []
    [enrolled_event] = await events(db, PARTNER_ENROLLED)
    enrolled = PartnerEnrolled.parse(enrolled_event.payload)
    assert (enrolled.name, enrolled.region) == ("Hooli Resellers", "NA")
    assert enrolled.via == "APPLICATION"
    assert enrolled.application_id == applied.application_id
    assert (
        gid("Partner", enrolled.partner_id)
        == approved["partnerApplicationApprove"]["application"]["partnerId"]
    )


async def test_enrolled_by_staff_and_by_import_and_not_when_refused(
    gql: GQL, db: Database, tenant: Tenant
) -> None:
    refused = await gql(
        CREATE, {"input": {"name": "Nope", "region": "EMEA"}}, as_user=tenant.user(Role.FINANCE)
    )
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    invalid = await gql.data(
        CREATE, {"input": {"name": " ", "region": "EMEA"}}, as_user=tenant.user(Role.VENDOR_ADMIN)
    )
    assert invalid["partnerCreate"]["userErrors"] != []
    assert await events(db, PARTNER_ENROLLED) == []

    created = await gql.data(
        CREATE, {"input": {"name": "Raviga", "region": "EMEA"}},
        as_user=tenant.user(Role.VENDOR_ADMIN),
    )  # fmt: skip
    assert created["partnerCreate"]["userErrors"] == []
    await _upload(gql, GOOD.encode(), tenant.user(Role.VENDOR_ADMIN))
    enrolled = [PartnerEnrolled.parse(e.payload) for e in await events(db, PARTNER_ENROLLED)]
    assert [(e.name, e.via, e.application_id) for e in enrolled] == [
        ("Raviga", "CREATED", None),
        ("Alpha Networks", "IMPORT", None),
        ("Beta Systems", "IMPORT", None),
        ("Gamma GmbH", "IMPORT", None),
    ]
