"""Identifiers people type and others read or export (``infra.text.identifier_problem``):
a partner's external reference, region and contact e-mail and phone, an invoice number, a
billing system's subscription id, a product category, a program's SKUs, categories and
regions, a contest's eligible regions and SKUs, group rule values, a threshold's region, an
invitation's e-mail, a recommendation's link and code, a webhook URL. An outside probe
stored "INV\\u202e42" (shown reversed), "r-\\u200b2" (looks like r-2, is another id) and
"\\x1b[2J" in each. Each is now a userError INVALID_CHARACTERS on the field naming the code
point, and changes nothing; surrounding whitespace is stripped, as for names."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from catalogue.models import Product
from deal_registration.registrations.models import DealRegistration
from deal_registration.sales.models import SaleClaim
from earnings.models import Program
from forecasts.models import ConcentrationThreshold
from incentives.models import IncentiveRule
from infra.audit import AuditEntry
from infra.clock import OffsetClock
from infra.db import Database
from leaderboards.models import Contest
from partners.group_models import PartnerGroup
from partners.models import Invitation, Partner, PartnerApplication
from partners.roles import Role
from subscriptions.models import SubscriptionChange
from tests.deal_registration.registrations.scenarios import submit_input
from tests.factories import Tenant, add_products, gid
from tests.support import GQL, count_rows, multipart
from webhooks.models import WebhookEndpoint

Make = Callable[[Tenant, OffsetClock, str], dict[str, Any]]
ADMIN, REP = Role.VENDOR_ADMIN, Role.PARTNER_REP


@pytest.fixture
async def catalogue(db: Database, clock: OffsetClock, tenant: Tenant) -> Tenant:
    async with db.transaction() as session:
        await add_products(session, clock, tenant)
    return tenant


def partner(**extra: Any) -> dict[str, Any]:
    return {"name": "Initrode GmbH", "region": "EMEA", **extra}


def contest(clock: OffsetClock, **extra: Any) -> dict[str, Any]:
    now = clock.now()
    return {
        "name": "Spring sprint",
        "startsAt": (now - timedelta(hours=1)).isoformat(),
        "endsAt": (now + timedelta(days=7)).isoformat(),
        **extra,
    }


def program(clock: OffsetClock, **rules: Any) -> dict[str, Any]:
    return {
        "name": "Rewards",
        "currency": "USD",
        "rules": {"baseRates": [{"rateBp": 800}], **rules},
    }


def spiff(clock: OffsetClock, **extra: Any) -> dict[str, Any]:
    now = clock.now()
    return {
        "sku": "NW-1", "perUnit": "5.00", "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(days=30)).isoformat(), **extra,
    }  # fmt: skip


def claim(clock: OffsetClock, **extra: Any) -> dict[str, Any]:
    return {
        "serials": ["SN-000001"], "customerName": "Acme", "invoiceNumber": "INV-1",
        "saleDate": clock.now().date().isoformat(),
        "amount": {"amount": "100.00", "currency": "USD"}, **extra,
    }  # fmt: skip


def recommend(**extra: Any) -> dict[str, Any]:
    action = {"kind": "RECOMMEND", "days": 14, "title": "Sell again", "text": "Go.", **extra}
    return {"name": "Nudge", "condition": "revenue_7d > 0", "actions": [action]}


# (case, role, mutation, input type, the table it would write, make, field, whole): ``whole``
# when the text is the whole value (so a value with nothing visible is tried too); a URL
# carries it in its path.
CASES: list[tuple[str, Role, str, str, Any, Make, str, bool]] = [
    ("partner external ref", ADMIN, "partnerCreate", "PartnerCreateInput", Partner,
     lambda t, c, x: partner(externalRef=x), "externalRef", True),
    ("partner region", ADMIN, "partnerCreate", "PartnerCreateInput", Partner,
     lambda t, c, x: partner(region=x), "region", True),
    ("partner contact email", ADMIN, "partnerCreate", "PartnerCreateInput", Partner,
     lambda t, c, x: partner(contacts=[{"name": "Ann", "email": x}]), "contacts.0.email", True),
    ("partner contact phone", ADMIN, "partnerCreate", "PartnerCreateInput", Partner,
     lambda t, c, x: partner(contacts=[{"name": "Ann", "email": "a@b.example", "phone": x}]),
     "contacts.0.phone", True),
    ("partner update external ref", ADMIN, "partnerUpdate", "PartnerUpdateInput", AuditEntry,
     lambda t, c, x: {"id": gid(t.partners[0]), "externalRef": x}, "externalRef", True),
    ("partner update region", ADMIN, "partnerUpdate", "PartnerUpdateInput", AuditEntry,
     lambda t, c, x: {"id": gid(t.partners[0]), "region": x}, "region", True),
    ("claim invoice number", REP, "saleClaimCreate", "SaleClaimCreateInput", SaleClaim,
     lambda t, c, x: claim(c, invoiceNumber=x), "invoiceNumber", True),
    ("deal customer region", REP, "dealRegistrationSubmit", "DealRegistrationSubmitInput",
     DealRegistration,
     lambda t, c, x: submit_input(c, customer={"name": "Acme", "domain": "acme.com",
                                               "country": "DE", "region": x}),
     "customer.region", True),
    ("deal contact email", REP, "dealRegistrationSubmit", "DealRegistrationSubmitInput",
     DealRegistration,
     lambda t, c, x: submit_input(c, contact={"name": "Ann", "email": x}), "contact.email", True),
    ("product category", ADMIN, "productUpsert", "ProductUpsertInput", Product,
     lambda t, c, x: {"sku": "NW-ID", "name": "Router", "category": x,
                      "listPrice": {"amount": "1.00", "currency": "USD"}}, "category", True),
    ("program rate category", ADMIN, "earningProgramCreate", "EarningProgramCreateInput", Program,
     lambda t, c, x: program(c, baseRates=[{"rateBp": 800}, {"rateBp": 500, "category": x}]),
     "rules.baseRates.1.category", True),
    ("program spiff sku", ADMIN, "earningProgramCreate", "EarningProgramCreateInput", Program,
     lambda t, c, x: program(c, spiffs=[spiff(c, sku=x)]), "rules.spiffs.0.sku", True),
    ("program spiff region", ADMIN, "earningProgramCreate", "EarningProgramCreateInput", Program,
     lambda t, c, x: program(c, spiffs=[spiff(c, region=x)]), "rules.spiffs.0.region", True),
    ("contest eligible region", ADMIN, "contestCreate", "ContestCreateInput", Contest,
     lambda t, c, x: contest(c, eligibility={"regions": ["NA", x]}), "eligibility.regions", True),
    ("contest eligible sku", ADMIN, "contestCreate", "ContestCreateInput", Contest,
     lambda t, c, x: contest(c, eligibility={"skus": [x]}), "eligibility.skus", True),
    ("group rule value", ADMIN, "partnerGroupCreate", "PartnerGroupCreateInput", PartnerGroup,
     lambda t, c, x: {"name": "By region",
                      "rule": [{"attribute": "region", "op": "IN", "values": [x]}]},
     "rule.0.values", True),
    ("threshold region", ADMIN, "concentrationThresholdSet", "ConcentrationThresholdSetInput",
     ConcentrationThreshold,
     lambda t, c, x: {"metric": "TOP_PARTNER_SHARE", "maxShareBp": 5000, "scope": "REGION",
                      "scopeValue": x}, "scopeValue", True),
    ("invitation email", ADMIN, "invitationCreate", "InvitationCreateInput", Invitation,
     lambda t, c, x: {"email": x, "role": "PARTNER_REP", "partnerId": gid(t.partners[0])},
     "email", True),
    ("subscription external id", ADMIN, "subscriptionRenew", "SubscriptionRenewInput",
     SubscriptionChange,
     lambda t, c, x: {"subscriptionId": gid("CustomerSubscription", uuid.uuid4()),
                      "externalId": x}, "externalId", True),
    ("recommendation code", ADMIN, "incentiveRuleCreate", "IncentiveRuleCreateInput",
     IncentiveRule, lambda t, c, x: recommend(code=x), "actions.0.code", True),
    ("recommendation link", ADMIN, "incentiveRuleCreate", "IncentiveRuleCreateInput",
     IncentiveRule, lambda t, c, x: recommend(link=x), "actions.0.link", True),
    ("webhook url", ADMIN, "webhookEndpointCreate", "WebhookEndpointCreateInput",
     WebhookEndpoint,
     lambda t, c, x: {"url": f"http://127.0.0.1:9/hook/{x}",
                      "eventTypes": ["sale_claim.approved"]}, "url", False),
]  # fmt: skip
# (the text, the code point the message names)
REFUSED = [
    ("INV\u202e42", "U+202E"),
    ("INV\u200b42", "U+200B"),  # looks like INV42, is another reference
    ("INV\ufeff42", "U+FEFF"),
    ("INV\x1b[2J", "U+001B"),
    ("IN\x7fV", "U+007F"),
    ("IN\x85V", "U+0085"),
    ("EM\u2066EA\u2069", "U+2066"),
    ("IN\nV", "U+000A"),
    ("IN\tV", "U+0009"),
    ("\u3164", "visible"),  # a blank filler: nothing to read
]
MATRIX = [
    pytest.param(*case[1:7], text, named, id=f"{case[0]}-{text!r}")
    for case in CASES
    for text, named in REFUSED
    if case[7] or named != "visible"
]


def _document(mutation: str, input_type: str) -> str:
    return (
        f"mutation($input: {input_type}!) {{ {mutation}(input: $input) "
        "{ userErrors { field code message } } }"
    )


@pytest.mark.parametrize(
    ("role", "mutation", "input_type", "table", "make", "field", "text", "named"), MATRIX
)
async def test_an_identifier_with_controls_or_invisible_characters_is_refused(
    gql: GQL, db: Database, clock: OffsetClock, catalogue: Tenant,
    role: Role, mutation: str, input_type: str, table: Any, make: Make, field: str,
    text: str, named: str,
) -> None:  # fmt: skip
    before = await count_rows(db, table), await count_rows(db, AuditEntry)
    data = await gql.data(
        _document(mutation, input_type),
        {"input": make(catalogue, clock, text)},
        as_user=catalogue.user(role),
    )
    errors = data[mutation]["userErrors"]
    mine = [e for e in errors if e["field"] == field]
    assert [e["code"] for e in mine] == ["INVALID_CHARACTERS"], errors
    assert named in mine[0]["message"]
    assert (await count_rows(db, table), await count_rows(db, AuditEntry)) == before


@pytest.mark.parametrize(
    ("role", "mutation", "input_type", "table", "make", "field"),
    [pytest.param(*case[1:7], id=case[0]) for case in CASES if case[0] != "webhook url"],
)
async def test_identifiers_in_any_script_with_inner_spaces_are_kept(
    gql: GQL, clock: OffsetClock, catalogue: Tenant,
    role: Role, mutation: str, input_type: str, table: Any, make: Make, field: str,
) -> None:  # fmt: skip
    """What the check lets through: letters of any script, inner spaces, punctuation; the
    surrounding spaces are stripped, not refused."""
    value = {
        "contacts.0.email": "  müller@example.de ",
        "contact.email": "  müller@example.de ",
        "email": " müller@example.de ",
        "actions.0.link": " https://shop.example/angebot?q=1 ",
        "externalId": " billing 7/ü ",
    }.get(field, " Zürich-請求 42 ")
    data = await gql.data(
        _document(mutation, input_type),
        {"input": make(catalogue, clock, value)},
        as_user=catalogue.user(role),
    )
    errors = data[mutation]["userErrors"]
    assert [e for e in errors if e["code"] == "INVALID_CHARACTERS"] == [], errors


RULE_CREATE = """mutation($input: IncentiveRuleCreateInput!) { incentiveRuleCreate(input: $input)
  { rule { id } userErrors { field code message } } }"""


async def test_a_rule_condition_refuses_bidi_overrides_and_keeps_line_breaks(
    gql: GQL, db: Database, tenant: Tenant
) -> None:
    """A condition is code a vendor reads: free text. A bidi override in a string literal
    (Trojan Source) is refused before it is compiled; line breaks and tabs are kept."""
    admin = tenant.user(ADMIN)
    for text, named in (
        ('revenue_7d > 0 && "a\u202e" == "a"', "U+202E"),
        ("revenue_7d > 0 \x1b[2J", "U+001B"),
    ):
        before = await count_rows(db, IncentiveRule)
        refused = await gql.data(
            RULE_CREATE, {"input": {**recommend(), "condition": text}}, as_user=admin
        )
        [error] = refused["incentiveRuleCreate"]["userErrors"]
        assert (error["code"], error["field"]) == ("INVALID_CHARACTERS", "condition")
        assert named in error["message"]
        assert await count_rows(db, IncentiveRule) == before
    kept = await gql.data(
        RULE_CREATE,
        {"input": {**recommend(), "condition": "revenue_7d > 0\n\t&& revenue_7d < 10"}},
        as_user=admin,
    )
    assert kept["incentiveRuleCreate"]["userErrors"] == []


APPLY = """mutation($input: PartnerApplyInput!) { partnerApply(input: $input) {
  reference userErrors { field code message } } }"""
APPROVE = """mutation($input: PartnerApplicationApproveInput!) {
  partnerApplicationApprove(input: $input) {
    application { status } userErrors { field code message } } }"""


async def test_an_application_refuses_such_an_email_and_its_approval_such_a_region(
    gql: GQL, db: Database, tenant: Tenant
) -> None:
    form = {
        "vendorSlug": tenant.vendor.slug, "company": "Hooli Resellers", "contactName": "Gavin",
        "country": "us",
    }  # fmt: skip
    before = await count_rows(db, PartnerApplication)
    refused = await gql.data(APPLY, {"input": {**form, "contactEmail": "g\u202e@hooli.example"}})
    [error] = refused["partnerApply"]["userErrors"]
    assert (error["code"], error["field"]) == ("INVALID_CHARACTERS", "contactEmail")
    assert await count_rows(db, PartnerApplication) == before
    applied = await gql.data(APPLY, {"input": {**form, "contactEmail": "gavin@hooli.example"}})
    assert applied["partnerApply"]["userErrors"] == []
    admin = tenant.user(ADMIN)
    listed = await gql.data(
        "{ partnerApplications { edges { node { id } } } }", as_user=admin
    )  # fmt: skip
    application = listed["partnerApplications"]["edges"][0]["node"]["id"]
    partners = await count_rows(db, Partner)
    approved = await gql.data(
        APPROVE, {"input": {"id": application, "region": "EM\u200bEA"}}, as_user=admin
    )
    result = approved["partnerApplicationApprove"]
    [error] = result["userErrors"]
    assert (error["code"], error["field"]) == ("INVALID_CHARACTERS", "region")
    assert "U+200B" in error["message"]
    assert await count_rows(db, Partner) == partners


IMPORT = """mutation($input: PartnersImportInput!) { partnersImport(input: $input) {
  result { applied inserted } rowErrors { line code message } userErrors { code } } }"""


async def test_the_partner_csv_import_refuses_such_identifiers_by_line(
    gql: GQL, db: Database, tenant: Tenant
) -> None:
    data = (
        "external_ref,name,region,contact_name,contact_email,contact_phone\n"
        "CRM-1,Alpha Networks,EMEA,,,\n"  # line 2: fine
        "CRM-\u202e2,Beta Networks,EMEA,,,\n"  # 3
        "CRM-3,Gamma Networks,EM\u200bEA,,,\n"  # 4
        "CRM-4,Delta Networks,EMEA,Ann,ann\x1b@d.example,\n"  # 5
        "CRM-5,Epsilon Networks,EMEA,Ann,ann@e.example,+49\u2066 30\u2069\n"  # 6
        "\ufeffCRM-6,Zeta Networks,EMEA,,,\n"  # 7: a BOM inside the file is no BOM
    ).encode()
    files = {"variables.input.file": ("partners.csv", data, "text/csv")}
    response = await multipart(
        gql, IMPORT, {"input": {"file": None}}, files,
        token=gql.token(tenant.user(ADMIN)),
    )  # fmt: skip
    result = response.json()["data"]["partnersImport"]
    assert result["result"]["applied"] is False
    assert [(e["line"], e["code"]) for e in result["rowErrors"]] == [
        (line, "INVALID_CHARACTERS") for line in (3, 4, 5, 6, 7)
    ]
    messages = [e["message"] for e in result["rowErrors"]]
    for message, (field, named) in zip(
        messages,
        [("external_ref", "U+202E"), ("region", "U+200B"), ("contacts.0.email", "U+001B"),
         ("contacts.0.phone", "U+2066"), ("external_ref", "U+FEFF")],
        strict=True,
    ):  # fmt: skip
        assert message.startswith(field), message
        assert named in message, message
    assert await count_rows(db, Partner) == 2
