"""Partner applications: the unauthenticated apply and status, the throttle, no tenant
enumeration, and the reviewers' list, approve and reject (roles, other vendor, bad input)."""

from __future__ import annotations

from typing import Any

from sqlmodel import select

from infra.audit import AuditEntry
from infra.db import Database
from partners.models import Partner, PartnerApplication
from partners.roles import Role
from tests.factories import Tenant, gid
from tests.support import GQL, count_rows, error_codes

APPLY = """mutation($input: PartnerApplyInput!) { partnerApply(input: $input) {
  reference userErrors { field code message } } }"""
STATUS = """query($ref: String!) { partnerApplicationStatus(reference: $ref) {
  reference status rejectionReason } }"""
LIST = """query($status: ApplicationStatus) { partnerApplications(status: $status) {
  totalCount edges { node { id reference company contactEmail status } } } }"""
APPROVE = """mutation($input: PartnerApplicationApproveInput!) {
  partnerApplicationApprove(input: $input) {
    application { status partnerId } invitation { email role } invitationToken
    userErrors { field code } } }"""
REJECT = """mutation($input: PartnerApplicationRejectInput!) {
  partnerApplicationReject(input: $input) {
    application { status rejectionReason } userErrors { field code } } }"""


def form(tenant: Tenant | None, **overrides: Any) -> dict[str, Any]:
    values = {
        "vendorSlug": tenant.vendor.slug if tenant else "no-such-vendor",
        "company": "Hooli Resellers",
        "contactName": "Gavin",
        "contactEmail": "gavin@hooli.example",
        "country": "us",
        "message": "We sell a lot.",
    }
    return {"input": {**values, **overrides}}


async def _apply(gql: GQL, variables: dict[str, Any], address: str = "10.0.0.1") -> Any:
    response = await gql.client.post(
        "/graphql", json={"query": APPLY, "variables": variables},
        headers={"content-type": "application/json"},
    )  # fmt: skip
    return response.json()["data"]["partnerApply"]


async def test_apply_and_follow_the_status_without_an_account(
    gql: GQL, db: Database, tenant: Tenant, other_tenant: Tenant
) -> None:
    applied = await _apply(gql, form(tenant))
    assert applied["userErrors"] == []
    reference = applied["reference"]
    assert reference.startswith("APP-")
    status = (await gql.data(STATUS, {"ref": reference}))["partnerApplicationStatus"]
    assert status == {"reference": reference, "status": "PENDING", "rejectionReason": None}
    assert (await gql.data(STATUS, {"ref": "APP-NOPE"}))["partnerApplicationStatus"] is None

    # No tenant enumeration: an unknown slug is answered the same way, and stays PENDING.
    unknown = await _apply(gql, form(None, contactEmail="x@y.example"))
    assert unknown["userErrors"] == []
    assert unknown["reference"].startswith("APP-")
    ghost = (await gql.data(STATUS, {"ref": unknown["reference"]}))["partnerApplicationStatus"]
    assert ghost["status"] == "PENDING"

    # Reviewers of the vendor see it; nobody else does.
    admin, manager = tenant.user(Role.VENDOR_ADMIN), tenant.user(Role.CHANNEL_MANAGER)
    for reviewer in (admin, manager):
        listed = (await gql.data(LIST, as_user=reviewer))["partnerApplications"]
        assert [e["node"]["reference"] for e in listed["edges"]] == [reference]
    other = await gql.data(LIST, as_user=other_tenant.user(Role.VENDOR_ADMIN))
    assert other["partnerApplications"]["totalCount"] == 0
    for role in (Role.FINANCE, Role.PARTNER_ADMIN, Role.PARTNER_REP):
        assert error_codes(await gql(LIST, as_user=tenant.user(role))) == ["FORBIDDEN"]
    assert error_codes(await gql(LIST)) == ["UNAUTHENTICATED"]


async def test_bad_input_is_refused_with_codes(gql: GQL, db: Database, tenant: Tenant) -> None:
    bad = await _apply(gql, form(tenant, company=" ", contactEmail="nope", country="ZZ"))
    assert [(e["field"], e["code"]) for e in bad["userErrors"]] == [
        ("company", "REQUIRED"), ("contactEmail", "INVALID_EMAIL"), ("country", "INVALID_COUNTRY")
    ]  # fmt: skip
    assert bad["reference"] is None
    assert await count_rows(db, PartnerApplication) == 0


async def test_throttled_per_address_and_per_email(gql: GQL, db: Database, tenant: Tenant) -> None:
    # Per e-mail: 3 an hour by default, whatever the vendor (known or not).
    for _ in range(3):
        assert (await _apply(gql, form(tenant)))["userErrors"] == []
    limited = await _apply(gql, form(None))
    assert [e["code"] for e in limited["userErrors"]] == ["RATE_LIMITED"]
    # Per address: 5 an hour (the test client is one address).
    for i in range(2):
        assert (await _apply(gql, form(tenant, contactEmail=f"a{i}@x.example")))["userErrors"] == []
    limited = await _apply(gql, form(tenant, contactEmail="fresh@x.example"))
    assert [e["code"] for e in limited["userErrors"]] == ["RATE_LIMITED"]
    assert await count_rows(db, PartnerApplication) == 5


async def test_review_approve_and_reject(
    gql: GQL, db: Database, tenant: Tenant, other_tenant: Tenant
) -> None:
    first = (await _apply(gql, form(tenant)))["reference"]
    second = (await _apply(gql, form(tenant, company="Pied Piper", contactEmail="r@pp.example")))[
        "reference"
    ]
    admin, manager = tenant.user(Role.VENDOR_ADMIN), tenant.user(Role.CHANNEL_MANAGER)
    nodes = (await gql.data(LIST, as_user=admin))["partnerApplications"]["edges"]
    ids = {e["node"]["reference"]: e["node"]["id"] for e in nodes}

    approve = {"input": {"id": ids[first], "region": "na"}}
    for role in (Role.FINANCE, Role.PARTNER_ADMIN):
        assert error_codes(await gql(APPROVE, approve, as_user=tenant.user(role))) == ["FORBIDDEN"]
    assert error_codes(await gql(APPROVE, approve)) == ["UNAUTHENTICATED"]
    other = await gql.data(APPROVE, approve, as_user=other_tenant.user(Role.VENDOR_ADMIN))
    assert [e["code"] for e in other["partnerApplicationApprove"]["userErrors"]] == ["NOT_FOUND"]
    no_region = await gql.data(APPROVE, {"input": {"id": ids[first], "region": ""}}, as_user=admin)
    assert [e["code"] for e in no_region["partnerApplicationApprove"]["userErrors"]] == ["REQUIRED"]
    assert await count_rows(db, Partner) == 4

    approved = (await gql.data(APPROVE, approve, as_user=manager))["partnerApplicationApprove"]
    assert approved["application"]["status"] == "APPROVED"
    # A channel manager may not invite: the partner is created, the invitation is not.
    assert (approved["invitation"], approved["invitationToken"]) == (None, None)
    async with db.session() as session:
        partner = (
            await session.exec(select(Partner).where(Partner.name == "Hooli Resellers"))
        ).one()
    assert approved["application"]["partnerId"] == gid(partner)
    assert (partner.vendor_id, partner.region, partner.country) == (tenant.vendor.id, "NA", "US")
    assert partner.contacts == [{"name": "Gavin", "email": "gavin@hooli.example", "phone": ""}]
    again = await gql.data(APPROVE, approve, as_user=admin)
    assert [e["code"] for e in again["partnerApplicationApprove"]["userErrors"]] == [
        "ALREADY_DECIDED"
    ]

    reject = {"input": {"id": ids[second], "reason": "Outside our territories."}}
    empty = await gql.data(REJECT, {"input": {"id": ids[second], "reason": " "}}, as_user=admin)
    assert [e["code"] for e in empty["partnerApplicationReject"]["userErrors"]] == ["REQUIRED"]
    rejected = (await gql.data(REJECT, reject, as_user=admin))["partnerApplicationReject"]
    assert rejected["application"]["status"] == "REJECTED"
    status = (await gql.data(STATUS, {"ref": second}))["partnerApplicationStatus"]
    assert status == {
        "reference": second, "status": "REJECTED", "rejectionReason": "Outside our territories."
    }  # fmt: skip

    async with db.session() as session:
        actions = list(
            await session.exec(
                select(AuditEntry.action).where(AuditEntry.vendor_id == tenant.vendor.id)
            )
        )
    assert sorted(actions) == [
        "partner.created", "partner_application.approved", "partner_application.rejected"
    ]  # fmt: skip


async def test_a_vendor_admin_approval_invites_the_applicant(
    gql: GQL, db: Database, tenant: Tenant
) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    await _apply(gql, form(tenant))
    taken = tenant.user(Role.PARTNER_REP).email
    await _apply(gql, form(tenant, company="Taken Inc", contactEmail=taken))
    nodes = (await gql.data(LIST, as_user=admin))["partnerApplications"]["edges"]
    ids = {e["node"]["company"]: e["node"]["id"] for e in nodes}

    approved = await gql.data(
        APPROVE, {"input": {"id": ids["Hooli Resellers"], "region": "NA"}}, as_user=admin
    )
    payload = approved["partnerApplicationApprove"]
    assert payload["userErrors"] == []
    assert payload["invitation"] == {"email": "gavin@hooli.example", "role": "PARTNER_ADMIN"}
    assert payload["invitationToken"]

    # The applicant's e-mail already has a user: nothing is created.
    refused = await gql.data(
        APPROVE, {"input": {"id": ids["Taken Inc"], "region": "NA"}}, as_user=admin
    )
    assert [e["code"] for e in refused["partnerApplicationApprove"]["userErrors"]] == [
        "DUPLICATE_EMAIL"
    ]
    async with db.session() as session:
        names = set(await session.exec(select(Partner.name)))
    assert "Taken Inc" not in names
    assert "Hooli Resellers" in names


async def test_a_company_name_no_partner_can_take_is_refused_when_applying(
    gql: GQL, tenant: Tenant
) -> None:
    """Forty ligatures NFKC spells out as 18 letters each: within 200 characters, but its
    name key (720) is past what a partner's name may take. The application was taken, and
    every approval of it refused as REQUIRED on `region`; it is refused at once, TOO_LONG
    on `company`, as partnerCreate refuses the name."""
    applied = await _apply(gql, form(tenant, company="\ufdfa" * 40))
    assert [(e["code"], e["field"]) for e in applied["userErrors"]] == [("TOO_LONG", "company")]
