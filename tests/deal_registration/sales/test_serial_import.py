"""The serial registry import: idempotence, updates, marking, the error report, refusal of
bad files — through the service and through the GraphQL upload."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from sqlmodel import select

from deal_registration.sales import serials
from deal_registration.sales.errors import SerialImportErrorCode
from deal_registration.sales.models import Serial, SerialImport, SerialStatus
from infra.clock import OffsetClock
from infra.db import Database
from infra.errors import DomainError
from partners.roles import Role
from tests.deal_registration.sales.scenarios import SKU, WIDGET, csv_bytes, registry_rows
from tests.factories import Tenant, add_products
from tests.support import GQL, count_rows, error_codes, multipart


async def _product(db: Database, clock: OffsetClock, tenant: Tenant) -> None:
    async with db.transaction() as session:
        await add_products(session, clock, tenant, (WIDGET,))


async def _import(
    db: Database, clock: OffsetClock, tenant: Tenant, data: bytes, **kwargs: object
) -> serials.ImportReport:
    admin = tenant.principal(Role.VENDOR_ADMIN)
    async with db.transaction() as session:
        return await serials.import_serials(
            session,
            admin,
            clock,
            source=io.BytesIO(data),
            **kwargs,  # type: ignore[arg-type]
        )


async def _registry(db: Database, tenant: Tenant) -> dict[str, Serial]:
    async with db.session() as session:
        rows = await session.exec(select(Serial).where(Serial.vendor_id == tenant.vendor.id))
        return {s.serial: s for s in rows}


async def test_import_is_idempotent_and_updates_changed_rows(
    db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    await _product(db, clock, tenant)
    rows = registry_rows(tenant, clock, 6)
    first = await _import(db, clock, tenant, csv_bytes(rows))
    assert (first.rows, first.inserted, first.updated, first.unchanged) == (6, 6, 0, 0)
    before = await _registry(db, tenant)
    assert set(before) == {f"SN{i:06d}" for i in range(1, 7)}
    assert before["SN000001"].partner_id == tenant.partners[0].id
    assert before["SN000006"].partner_id == tenant.partners[1].id

    again = await _import(db, clock, tenant, csv_bytes(rows))
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 6)
    assert await _registry(db, tenant) == before  # nothing changed, not even timestamps

    changed = list(rows)
    changed[0] = (*rows[0][:3], "APAC", *rows[0][4:])
    changed[1] = (*rows[1][:5], "RETURNED")
    changed[2] = (*rows[2][:5], "voided")
    third = await _import(db, clock, tenant, csv_bytes(changed))
    assert (third.inserted, third.updated, third.unchanged) == (0, 3, 3)
    after = await _registry(db, tenant)
    assert after["SN000001"].region == "APAC"
    assert after["SN000002"].status is SerialStatus.RETURNED
    assert after["SN000003"].status is SerialStatus.VOIDED
    assert await count_rows(db, SerialImport) == 3


async def test_bad_rows_are_reported_by_line_and_nothing_is_written(
    db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    await _product(db, clock, tenant)
    good = registry_rows(tenant, clock, 3)
    future = (clock.now() + timedelta(days=3)).date().isoformat()
    bad = [
        ("!!", SKU, "", "EMEA", "2026-01-01", ""),  # line 5: malformed serial
        ("SN-900001", "NOPE", "", "EMEA", "2026-01-01", ""),  # line 6: unknown SKU
        ("SN-900002", SKU, "Nobody Inc", "EMEA", "2026-01-01", ""),  # 7: unknown partner
        ("SN-900003", SKU, "", "EMEA", "yesterday", ""),  # 8: bad date
        ("SN-900004", SKU, "", "EMEA", future, ""),  # 9: future
        ("SN-900005", SKU, "", "EMEA", "2026-01-01", "LOST"),  # 10: bad status
        ("sn 000001", SKU, "", "EMEA", "2026-01-01", ""),  # 11: duplicate of line 2
        ("SN-900006", SKU),  # 12: too few columns
    ]
    data = csv_bytes(good + bad)
    with pytest.raises(serials.ImportRejected) as refused:
        await _import(db, clock, tenant, data)
    report = refused.value.report
    assert [(e.line, e.code) for e in report.errors] == [
        (5, SerialImportErrorCode.MALFORMED_SERIAL),
        (6, SerialImportErrorCode.UNKNOWN_SKU),
        (7, SerialImportErrorCode.UNKNOWN_PARTNER),
        (8, SerialImportErrorCode.INVALID_DATE),
        (9, SerialImportErrorCode.SHIPPED_IN_FUTURE),
        (10, SerialImportErrorCode.INVALID_STATUS),
        (11, SerialImportErrorCode.DUPLICATE_IN_FILE),
        (12, SerialImportErrorCode.WRONG_COLUMN_COUNT),
    ]
    assert "line 2" in report.errors[6].message
    assert await count_rows(db, Serial) == 0
    assert await count_rows(db, SerialImport) == 0

    partial = await _import(db, clock, tenant, data, good_rows_only=True)
    assert (partial.rows, partial.inserted, partial.rejected) == (11, 3, 8)
    assert set(await _registry(db, tenant)) == {"SN000001", "SN000002", "SN000003"}


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"serial,sku,partner,region,shipped_at\nA1,B,,,2026-01-01\n", "WRONG_HEADER"),
        (b"sku,serial\n", "WRONG_HEADER"),
        (b"", "EMPTY_FILE"),
        (b"serial,sku,shipped_to,region,shipped_at\n", "EMPTY_FILE"),
        (
            "serial,sku,shipped_to,region,shipped_at\nSNÄ1,X,,,2026-01-01\n".encode("latin-1"),
            "BAD_ENCODING",
        ),
        (b"\xff\xfes\x00e\x00r\x00", "BAD_ENCODING"),  # UTF-16
    ],
)
async def test_wrong_files_are_refused(
    db: Database, clock: OffsetClock, tenant: Tenant, data: bytes, code: str
) -> None:
    await _product(db, clock, tenant)
    with pytest.raises(DomainError) as refused:
        await _import(db, clock, tenant, data)
    assert refused.value.code.value == code
    assert await count_rows(db, Serial) == 0


IMPORT = """
mutation($input: SerialsImportInput!) {
  serialsImport(input: $input) {
    result { applied rows inserted updated unchanged rejected }
    rowErrors { line code message }
    userErrors { field code message }
  }
}"""


async def test_graphql_upload_for_vendor_admins_only(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, other_tenant: Tenant
) -> None:
    await _product(db, clock, tenant)
    data = csv_bytes(registry_rows(tenant, clock, 4))
    files = {"variables.input.file": ("ship.csv", data, "text/csv")}
    variables = {"input": {"file": None}}

    anonymous = await multipart(gql, IMPORT, variables, files)
    assert error_codes(anonymous.json()) == ["UNAUTHENTICATED"]
    for role in (Role.CHANNEL_MANAGER, Role.FINANCE, Role.PARTNER_ADMIN):
        refused = await multipart(gql, IMPORT, variables, files, token=gql.token(tenant.user(role)))
        assert error_codes(refused.json()) == ["FORBIDDEN"], role
    assert await count_rows(db, Serial) == 0

    admin = gql.token(tenant.user(Role.VENDOR_ADMIN))
    done = (await multipart(gql, IMPORT, variables, files, token=admin)).json()["data"]
    assert done["serialsImport"]["result"] == {
        "applied": True, "rows": 4, "inserted": 4, "updated": 0, "unchanged": 0, "rejected": 0
    }  # fmt: skip
    again = (await multipart(gql, IMPORT, variables, files, token=admin)).json()["data"]
    assert again["serialsImport"]["result"]["unchanged"] == 4

    # Another vendor's admin imports the same text: partner names are not theirs.
    other = gql.token(other_tenant.user(Role.VENDOR_ADMIN))
    refused_other = (await multipart(gql, IMPORT, variables, files, token=other)).json()["data"]
    payload = refused_other["serialsImport"]
    assert payload["result"]["applied"] is False
    assert payload["userErrors"][0]["code"] == "ROWS_REJECTED"
    assert {e["code"] for e in payload["rowErrors"]} == {"UNKNOWN_SKU"}
    assert [e["line"] for e in payload["rowErrors"]] == [2, 3, 4, 5]
    assert await count_rows(db, Serial) == 4


async def test_graphql_upload_refuses_wrong_header(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    await _product(db, clock, tenant)
    files = {"variables.input.file": ("ship.csv", b"a,b,c\n1,2,3\n", "text/csv")}
    admin = gql.token(tenant.user(Role.VENDOR_ADMIN))
    payload = (await multipart(gql, IMPORT, {"input": {"file": None}}, files, token=admin)).json()
    errors = payload["data"]["serialsImport"]["userErrors"]
    assert [(e["field"], e["code"]) for e in errors] == [("file", "WRONG_HEADER")]
    assert await count_rows(db, Serial) == 0


async def test_one_file_mapped_to_two_imports_is_read_whole_by_both(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """One file at two paths of `map` (the multipart spec allows it): the second import
    reads the file from its start too (it read what the first left: an empty file)."""
    await _product(db, clock, tenant)
    data = csv_bytes(registry_rows(tenant, clock, 3))
    fields = "result { rows inserted unchanged } userErrors { code }"
    query = f"""
    mutation($a: Upload!, $b: Upload!) {{
      first: serialsImport(input: {{file: $a}}) {{ {fields} }}
      again: serialsImport(input: {{file: $b}}) {{ {fields} }}
    }}"""
    response = await gql.client.post(
        "/graphql",
        data={
            "operations": json.dumps({"query": query, "variables": {"a": None, "b": None}}),
            "map": json.dumps({"0": ["variables.a", "variables.b"]}),
        },
        files={"0": ("ship.csv", data, "text/csv")},
        headers={"authorization": f"Bearer {gql.token(tenant.user(Role.VENDOR_ADMIN))}"},
    )
    payload = response.json()["data"]
    assert payload["first"] == {
        "result": {"rows": 3, "inserted": 3, "unchanged": 0}, "userErrors": []
    }  # fmt: skip
    assert payload["again"] == {
        "result": {"rows": 3, "inserted": 0, "unchanged": 3}, "userErrors": []
    }  # fmt: skip


async def test_a_shipped_to_with_controls_or_overrides_is_refused_by_line(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """shipped_to names a partner: what a name refuses (infra.text) is refused on its line,
    code INVALID_CHARACTERS naming the code point, and the file writes nothing."""
    await _product(db, clock, tenant)
    good = registry_rows(tenant, clock, 2)  # lines 2-3
    bad = [
        ("SN-900001", SKU, "\u202eevil", "EMEA", "2026-01-01", ""),  # line 4
        ("SN-900002", SKU, "a\x1bb", "EMEA", "2026-01-01", ""),  # line 5
        ("SN-900003", SKU, "\u200b", "EMEA", "2026-01-01", ""),  # line 6
    ]
    files = {"variables.input.file": ("ship.csv", csv_bytes(good + bad), "text/csv")}
    admin = gql.token(tenant.user(Role.VENDOR_ADMIN))
    payload = (await multipart(gql, IMPORT, {"input": {"file": None}}, files, token=admin)).json()
    result = payload["data"]["serialsImport"]
    assert result["result"]["applied"] is False
    assert [(e["line"], e["code"]) for e in result["rowErrors"]] == [
        (4, "INVALID_CHARACTERS"),
        (5, "INVALID_CHARACTERS"),
        (6, "INVALID_CHARACTERS"),
    ]
    assert "U+202E" in result["rowErrors"][0]["message"]
    assert "U+001B" in result["rowErrors"][1]["message"]
    assert await count_rows(db, Serial) == 0


async def test_a_region_with_controls_or_invisible_characters_is_refused_by_line(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """region is an identifier (infra.text): a control, bidi or format character is refused
    on its line with INVALID_CHARACTERS naming it, and the file writes nothing."""
    await _product(db, clock, tenant)
    good = registry_rows(tenant, clock, 2)  # lines 2-3
    bad = [
        ("SN-900001", SKU, "", "EM\u202eEA", "2026-01-01", ""),  # line 4
        ("SN-900002", SKU, "", "EM\u200bEA", "2026-01-01", ""),  # line 5
        ("SN-900003", SKU, "", "\u3164", "2026-01-01", ""),  # line 6
    ]
    files = {"variables.input.file": ("ship.csv", csv_bytes(good + bad), "text/csv")}
    admin = gql.token(tenant.user(Role.VENDOR_ADMIN))
    payload = (await multipart(gql, IMPORT, {"input": {"file": None}}, files, token=admin)).json()
    result = payload["data"]["serialsImport"]
    assert result["result"]["applied"] is False
    assert [(e["line"], e["code"]) for e in result["rowErrors"]] == [
        (4, "INVALID_CHARACTERS"),
        (5, "INVALID_CHARACTERS"),
        (6, "INVALID_CHARACTERS"),
    ]
    assert "region" in result["rowErrors"][0]["message"]
    assert "U+202E" in result["rowErrors"][0]["message"]
    assert "U+200B" in result["rowErrors"][1]["message"]
    assert await count_rows(db, Serial) == 0
