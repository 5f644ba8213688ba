"""Names and titles people see refuse control characters and bidirectional overrides, and a
name must show something (``infra.text``): an outside probe named a partner "\\u202eevil"
(shown reversed on leaderboards), "a\\x1bb", or only a zero-width space, and each was stored.
Each refusal is a userError INVALID_CHARACTERS on the field naming the code point, and
changes nothing; names in any script, and emoji with their joiners, are kept."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from catalogue.models import Product
from earnings.models import Program
from infra.audit import AuditEntry
from infra.clock import OffsetClock
from infra.db import Database
from leaderboards.models import Contest
from partners.group_models import PartnerGroup
from partners.models import ApiKey, Partner
from partners.roles import Role
from tests.factories import Tenant, gid
from tests.support import GQL, count_rows, multipart

Make = Callable[[Tenant, OffsetClock, str], dict[str, Any]]


def contest(clock: OffsetClock, **extra: Any) -> dict[str, Any]:
    now = clock.now()
    return {
        "name": "Spring sprint",
        "startsAt": (now - timedelta(hours=1)).isoformat(),
        "endsAt": (now + timedelta(days=7)).isoformat(),
        **extra,
    }


def partner(**extra: Any) -> dict[str, Any]:
    return {"name": "Initrode GmbH", "region": "EMEA", **extra}


# (case, mutation, input type, the table it would write, make(tenant, clock, text), field)
CASES: list[tuple[str, str, str, Any, Make, str]] = [
    ("partner create", "partnerCreate", "PartnerCreateInput", Partner,
     lambda t, c, x: partner(name=x), "name"),
    ("partner legal name", "partnerCreate", "PartnerCreateInput", Partner,
     lambda t, c, x: partner(legalName=x), "legalName"),
    ("partner contact", "partnerCreate", "PartnerCreateInput", Partner,
     lambda t, c, x: partner(contacts=[{"name": x, "email": "a@b.example"}]), "contacts.0.name"),
    ("partner update", "partnerUpdate", "PartnerUpdateInput", AuditEntry,
     lambda t, c, x: {"id": gid(t.partners[0]), "name": x}, "name"),
    ("contest name", "contestCreate", "ContestCreateInput", Contest,
     lambda t, c, x: contest(c, name=x), "name"),
    ("contest prize", "contestCreate", "ContestCreateInput", Contest,
     lambda t, c, x: contest(c, prizes=[{"fromRank": 1, "toRank": 1, "prize": x}]), "prizes"),
    ("group create", "partnerGroupCreate", "PartnerGroupCreateInput", PartnerGroup,
     lambda t, c, x: {"name": x}, "name"),
    ("product", "productUpsert", "ProductUpsertInput", Product,
     lambda t, c, x: {"sku": "NW-TXT", "name": x,
                      "listPrice": {"amount": "1.00", "currency": "USD"}}, "name"),
    ("program", "earningProgramCreate", "EarningProgramCreateInput", Program,
     lambda t, c, x: {"name": x, "currency": "USD",
                      "rules": {"baseRates": [{"rateBp": 800}]}}, "name"),
    ("api key", "apiKeyCreate", "ApiKeyCreateInput", ApiKey, lambda t, c, x: {"name": x}, "name"),
]  # fmt: skip
# (the name, the code point the message names)
REFUSED = [
    ("\u202eevil", "U+202E"),
    ("a\x1bb", "U+001B"),
    ("x\x7f", "U+007F"),
    ("\u2066x\u2069", "U+2066"),
    ("Acme\nSystems", "U+000A"),
    ("\u200b", "visible"),
]


def _document(mutation: str, input_type: str) -> str:
    return (
        f"mutation($input: {input_type}!) {{ {mutation}(input: $input) "
        "{ userErrors { field code message } } }"
    )


@pytest.mark.parametrize(("text", "named"), REFUSED, ids=[repr(t) for t, _ in REFUSED])
@pytest.mark.parametrize(
    ("mutation", "input_type", "table", "make", "field"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
async def test_a_name_with_controls_or_nothing_visible_is_refused_and_changes_nothing(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant,
    mutation: str, input_type: str, table: Any, make: Make, field: str, text: str, named: str,
) -> None:  # fmt: skip
    admin = tenant.user(Role.VENDOR_ADMIN)
    before = await count_rows(db, table)
    data = await gql.data(
        _document(mutation, input_type), {"input": make(tenant, clock, text)}, as_user=admin
    )
    [error] = data[mutation]["userErrors"]
    assert (error["code"], error["field"]) == ("INVALID_CHARACTERS", field)
    assert named in error["message"]
    assert await count_rows(db, table) == before


ACCEPTED = ["Müller GmbH", "شركة", "株式会社", "👩\u200d💻 Team", "O'Brien & Co.", "חברה"]


@pytest.mark.parametrize("name", ACCEPTED)
async def test_names_in_any_script_and_emoji_are_kept(
    gql: GQL, clock: OffsetClock, tenant: Tenant, name: str
) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    made = await gql.data(
        """mutation($input: PartnerCreateInput!) { partnerCreate(input: $input) {
        partner { name } userErrors { code } } }""",
        {"input": partner(name=name)},
        as_user=admin,
    )
    assert made["partnerCreate"] == {"partner": {"name": name}, "userErrors": []}
    created = await gql.data(
        """mutation($input: ContestCreateInput!) { contestCreate(input: $input) {
        contest { name description } userErrors { code } } }""",
        {"input": contest(clock, name=name, description=f"{name}\n\tline two")},
        as_user=admin,
    )
    assert created["contestCreate"] == {
        "contest": {"name": name, "description": f"{name}\n\tline two"},
        "userErrors": [],
    }


FREE_TEXT: list[tuple[str, str, str, Any, Make, str]] = [
    ("group description", "partnerGroupCreate", "PartnerGroupCreateInput", PartnerGroup,
     lambda t, c, x: {"name": "EMEA", "description": x}, "description"),
    ("contest description", "contestCreate", "ContestCreateInput", Contest,
     lambda t, c, x: contest(c, description=x), "description"),
    ("suspension reason", "partnerSuspend", "PartnerSuspendInput", AuditEntry,
     lambda t, c, x: {"id": gid(t.partners[0]), "reason": x}, "reason"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("mutation", "input_type", "table", "make", "field"),
    [case[1:] for case in FREE_TEXT],
    ids=[case[0] for case in FREE_TEXT],
)
async def test_free_text_keeps_line_breaks_but_refuses_overrides_and_controls(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant,
    mutation: str, input_type: str, table: Any, make: Make, field: str,
) -> None:  # fmt: skip
    admin = tenant.user(Role.VENDOR_ADMIN)
    document = _document(mutation, input_type)
    for text, named in (("one\u202etwo", "U+202E"), ("one\x1b[2Jtwo", "U+001B")):
        before = await count_rows(db, table)
        refused = await gql.data(document, {"input": make(tenant, clock, text)}, as_user=admin)
        [error] = refused[mutation]["userErrors"]
        assert (error["code"], error["field"]) == ("INVALID_CHARACTERS", field)
        assert named in error["message"]
        assert await count_rows(db, table) == before
    kept = await gql.data(
        document, {"input": make(tenant, clock, "one\n\ttwo שלום 👩\u200d💻")}, as_user=admin
    )
    assert kept[mutation]["userErrors"] == []


IMPORT = """mutation($input: PartnersImportInput!) { partnersImport(input: $input) {
  result { applied inserted } rowErrors { line code message } userErrors { code } } }"""


async def test_the_partner_csv_import_refuses_such_a_name_by_line(
    gql: GQL, db: Database, tenant: Tenant
) -> None:
    data = (
        "external_ref,name,region\n"
        "CRM-1,Alpha Networks,EMEA\n"
        "CRM-2,\u202eevil,EMEA\n"
        'CRM-3,"two\nlines",EMEA\n'
        "CRM-4,\u200b,EMEA\n"
    ).encode()
    files = {"variables.input.file": ("partners.csv", data, "text/csv")}
    response = await multipart(
        gql, IMPORT, {"input": {"file": None}}, files,
        token=gql.token(tenant.user(Role.VENDOR_ADMIN)),
    )  # fmt: skip
    result = response.json()["data"]["partnersImport"]
    assert result["result"]["applied"] is False
    assert [(e["line"], e["code"]) for e in result["rowErrors"]] == [
        (3, "INVALID_CHARACTERS"),
        (5, "INVALID_CHARACTERS"),  # the line the quoted row ends on
        (6, "INVALID_CHARACTERS"),
    ]
    assert "U+202E" in result["rowErrors"][0]["message"]
    assert await count_rows(db, Partner) == 2


GROUP_CREATE = """mutation($input: PartnerGroupCreateInput!) { partnerGroupCreate(input: $input) {
  partnerGroup { id } userErrors { code } } }"""
PILOT_CREATE = """mutation($input: PilotCreateInput!) { pilotCreate(input: $input) {
  pilot { id } userErrors { code } } }"""


async def test_reasons_for_group_and_pilot_changes_refuse_overrides_and_controls(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """A reason is kept in membership history and the audit log people read: free text. A
    refused reason changes nothing (no audit entry, the group and pilot as they were)."""
    admin = tenant.user(Role.VENDOR_ADMIN)
    made = await gql.data(GROUP_CREATE, {"input": {"name": "Resellers"}}, as_user=admin)
    group = made["partnerGroupCreate"]["partnerGroup"]["id"]
    target = await gql.data(GROUP_CREATE, {"input": {"name": "Pilot pool"}}, as_user=admin)
    pool = target["partnerGroupCreate"]["partnerGroup"]["id"]
    partners = [gid(p) for p in tenant.partners]
    await gql.data(
        _document("partnerGroupMembersAdd", "PartnerGroupMembersInput"),
        {"input": {"id": pool, "partnerIds": partners}}, as_user=admin,
    )  # fmt: skip
    ends = (clock.now() + timedelta(days=30)).isoformat()
    pilot = (await gql.data(PILOT_CREATE, {"input": {
        "name": "Boost test", "groupId": pool, "endsAt": ends,
    }}, as_user=admin))["pilotCreate"]["pilot"]["id"]  # fmt: skip
    await gql.data(_document("pilotStart", "PilotInput"), {"input": {"id": pilot}}, as_user=admin)
    later = (clock.now() + timedelta(days=60)).isoformat()
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("partnerGroupUpdate", "PartnerGroupUpdateInput", {"id": group, "name": "Resellers"}),
        ("partnerGroupMembersAdd", "PartnerGroupMembersInput",
         {"id": group, "partnerIds": partners[:1]}),
        ("partnerGroupMembersRemove", "PartnerGroupMembersInput",
         {"id": group, "partnerIds": partners[:1]}),
        ("pilotExtend", "PilotExtendInput", {"id": pilot, "endsAt": later}),
        ("pilotEnd", "PilotInput", {"id": pilot}),
        ("partnerGroupDelete", "PartnerGroupDeleteInput", {"id": group}),
    ]  # fmt: skip
    for mutation, input_type, given in cases:
        document = _document(mutation, input_type)
        for text, named in (("one\u202etwo", "U+202E"), ("one\x1b[2Jtwo", "U+001B")):
            before = await count_rows(db, AuditEntry)
            refused = await gql.data(document, {"input": {**given, "reason": text}}, as_user=admin)
            [error] = refused[mutation]["userErrors"]
            assert (error["code"], error["field"]) == ("INVALID_CHARACTERS", "reason"), mutation
            assert named in error["message"]
            assert await count_rows(db, AuditEntry) == before, mutation
        kept = await gql.data(
            document, {"input": {**given, "reason": "one\n\ttwo שלום 👩\u200d💻"}}, as_user=admin
        )
        assert kept[mutation]["userErrors"] == [], mutation


THRESHOLD_SET = """mutation($input: ConcentrationThresholdSetInput!) {
  concentrationThresholdSet(input: $input) { threshold { id } userErrors { field code message } }
}"""


async def test_a_concentration_threshold_reason_refuses_overrides_and_controls(
    gql: GQL, db: Database, tenant: Tenant
) -> None:
    """Setting and removing a threshold keep their reason in the audit log: free text."""
    admin = tenant.user(Role.VENDOR_ADMIN)
    given = {"metric": "TOP_PARTNER_SHARE", "maxShareBp": 5000}
    remove = _document("concentrationThresholdRemove", "ConcentrationThresholdRemoveInput")
    threshold = None
    for mutation in ("concentrationThresholdSet", "concentrationThresholdRemove"):
        document = THRESHOLD_SET if threshold is None else remove
        input = given if threshold is None else {"id": threshold}
        for text, named in (("one\u202etwo", "U+202E"), ("one\x1b[2Jtwo", "U+001B")):
            before = await count_rows(db, AuditEntry)
            refused = await gql.data(document, {"input": {**input, "reason": text}}, as_user=admin)
            [error] = refused[mutation]["userErrors"]
            assert (error["code"], error["field"]) == ("INVALID_CHARACTERS", "reason"), mutation
            assert named in error["message"]
            assert await count_rows(db, AuditEntry) == before, mutation
        kept = await gql.data(
            document, {"input": {**input, "reason": "one\n\ttwo שלום 👩\u200d💻"}}, as_user=admin
        )
        assert kept[mutation]["userErrors"] == [], mutation
        if threshold is None:
            threshold = kept[mutation]["threshold"]["id"]
