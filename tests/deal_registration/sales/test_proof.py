"""Proof uploads (GraphQL multipart) and downloads: type by content, size limit, safe
names, hashes, and who may download."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from deal_registration.attachments import Attachment
from deal_registration.sales.models import SaleClaim
from infra.clock import OffsetClock
from infra.db import Database
from partners.roles import Role
from tests.deal_registration.sales.scenarios import CLAIM, CREATE, claim_input, seed_registry
from tests.factories import EXE, JPEG, PDF, PNG, Tenant
from tests.support import GQL, count_rows, error_codes, multipart

ATTACH = """
mutation($input: SaleClaimAttachProofInput!) {
  saleClaimAttachProof(input: $input) {
    saleClaim { id state attachments { id filename contentType size sha256 downloadUrl } }
    userErrors { field code message }
  }
}"""


def _stored_files(gql: GQL) -> list[Path]:
    root = gql.settings.var_dir / "attachments"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


async def _claim(gql: GQL, tenant: Tenant, clock: OffsetClock, serial: str = "SN000001") -> str:
    data = await gql.data(
        CREATE, {"input": claim_input([serial], clock)}, as_user=tenant.user(Role.PARTNER_REP, 0)
    )
    claim_id: str = data["saleClaimCreate"]["saleClaim"]["id"]
    return claim_id


async def _attach(
    gql: GQL, user: Any, claim_id: str, name: str, data: bytes, ctype: str = "application/pdf"
) -> dict[str, Any]:
    response = await multipart(
        gql, ATTACH, {"input": {"id": claim_id, "file": None}},
        {"variables.input.file": (name, data, ctype)}, token=gql.token(user),
    )  # fmt: skip
    assert response.status_code == 200, response.text
    payload: dict[str, Any] = response.json()
    return payload


async def test_proof_is_judged_by_content_hashed_and_named_safely(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    await seed_registry(db, clock, tenant, 6)
    rep = tenant.user(Role.PARTNER_REP, 0)
    claim_id = await _claim(gql, tenant, clock)
    png = await _attach(gql, rep, claim_id, "My invoice <1>.PDF", PNG, "application/pdf")
    result = png["data"]["saleClaimAttachProof"]
    assert result["userErrors"] == []
    [attachment] = result["saleClaim"]["attachments"]
    assert attachment["filename"] == "My invoice _1.png"  # the content decides the type
    assert attachment["contentType"] == "image/png"
    assert attachment["size"] == len(PNG)
    assert attachment["sha256"] == hashlib.sha256(PNG).hexdigest()
    jpeg = await _attach(gql, rep, claim_id, "scan.jpeg", JPEG, "image/jpeg")
    assert jpeg["data"]["saleClaimAttachProof"]["saleClaim"]["attachments"][1]["contentType"] == (
        "image/jpeg"
    )


@pytest.mark.parametrize(
    ("name", "data", "code"),
    [
        ("invoice.pdf", EXE, "UNSUPPORTED_FILE_TYPE"),  # an .exe renamed .pdf
        ("invoice.pdf", b"<html><script>alert(1)</script>", "UNSUPPORTED_FILE_TYPE"),
        ("invoice.pdf", b"", "EMPTY_FILE"),
        ("../../etc/passwd.pdf", PDF, "INVALID_FILENAME"),
        ("..\\..\\boot.ini.pdf", PDF, "INVALID_FILENAME"),
        ("invoice.pdf", PDF + b"\x00" * (10 << 20), "FILE_TOO_LARGE"),
    ],
)
async def test_upload_attacks_are_refused_and_change_nothing(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, name: str, data: bytes, code: str
) -> None:
    await seed_registry(db, clock, tenant, 6)
    claim_id = await _claim(gql, tenant, clock)
    files_before = _stored_files(gql)
    payload = await _attach(gql, tenant.user(Role.PARTNER_REP, 0), claim_id, name, data)
    result = payload["data"]["saleClaimAttachProof"]
    assert result["saleClaim"] is None
    assert [(e["field"], e["code"]) for e in result["userErrors"]] == [("file", code)]
    assert await count_rows(db, Attachment) == 0
    assert _stored_files(gql) == files_before
    claim = await gql.data(CLAIM, {"id": claim_id}, as_user=tenant.user(Role.PARTNER_REP, 0))
    assert claim["saleClaim"]["state"] == "NEEDS_PROOF"

    # The same file with a new claim: no claim is created either.
    created = await multipart(
        gql, CREATE, {"input": {**claim_input(["SN000002"], clock), "proof": None}},
        {"variables.input.proof": (name, data, "application/pdf")},
        token=gql.token(tenant.user(Role.PARTNER_REP, 0)),
    )  # fmt: skip
    errors = created.json()["data"]["saleClaimCreate"]["userErrors"]
    # (the input field: it said "file", which saleClaimCreate's input does not have)
    assert [(e["field"], e["code"]) for e in errors] == [("proof", code)]
    assert await count_rows(db, SaleClaim) == 1
    assert _stored_files(gql) == files_before


async def test_multipart_without_credentials_is_refused(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """What a cross-site form could send: multipart/form-data without the Authorization
    header (browsers never attach it cross-origin). Credentials are never cookies here, so
    such a request is anonymous and refused."""
    await seed_registry(db, clock, tenant, 6)
    claim_id = await _claim(gql, tenant, clock)
    response = await multipart(
        gql, ATTACH, {"input": {"id": claim_id, "file": None}},
        {"variables.input.file": ("x.pdf", PDF, "application/pdf")},
        headers={"cookie": "session=whatever", "origin": "https://evil.example"},
    )  # fmt: skip
    assert error_codes(response.json()) == ["UNAUTHENTICATED"]
    assert await count_rows(db, Attachment) == 0


async def test_download_only_for_those_who_see_the_claim(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, other_tenant: Tenant
) -> None:
    await seed_registry(db, clock, tenant, 6)
    claim_id = await _claim(gql, tenant, clock)
    payload = await _attach(gql, tenant.user(Role.PARTNER_REP, 0), claim_id, "inv.pdf", PDF)
    url = payload["data"]["saleClaimAttachProof"]["saleClaim"]["attachments"][0]["downloadUrl"]

    async def get(user: Any | None, path: str = url) -> int:
        headers = {"authorization": f"Bearer {gql.token(user)}"} if user else {}
        response = await gql.client.get(path, headers=headers)
        if response.status_code == 200:
            assert response.content == PDF
            assert response.headers["content-type"] == "application/pdf"
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["content-disposition"] == 'attachment; filename="inv.pdf"'
        return response.status_code

    allowed = [
        tenant.user(Role.PARTNER_REP, 0),
        tenant.user(Role.PARTNER_ADMIN, 0),
        tenant.user(Role.CHANNEL_MANAGER),  # assigned to partner 0
        tenant.user(Role.VENDOR_ADMIN),
        tenant.user(Role.FINANCE),
    ]
    for user in allowed:
        assert await get(user) == 200, user.role
    for user in (
        tenant.user(Role.PARTNER_REP, 1),
        tenant.user(Role.PARTNER_ADMIN, 1),
        other_tenant.user(Role.VENDOR_ADMIN),
        other_tenant.user(Role.PARTNER_ADMIN, 0),
    ):
        assert await get(user) == 404, user.role  # like a file that does not exist
    assert await get(None) == 401
    assert await get(tenant.user(Role.VENDOR_ADMIN), "/attachments/not-a-uuid") == 404
    assert await get(tenant.user(Role.VENDOR_ADMIN), "/attachments/..%2F..%2Fetc%2Fpasswd") == 404


async def test_reused_proof_file_raises_an_internal_flag(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    await seed_registry(db, clock, tenant, 10)
    first = await _claim(gql, tenant, clock, "SN000001")
    second = await _claim(gql, tenant, clock, "SN000002")
    rep = tenant.user(Role.PARTNER_REP, 0)
    await _attach(gql, rep, first, "a.pdf", PDF)
    reused = await _attach(gql, rep, second, "b.pdf", PDF)
    # Auto-approval would have applied; the flag sends the claim to review instead.
    assert reused["data"]["saleClaimAttachProof"]["saleClaim"]["state"] == "UNDER_REVIEW"
    flags = await gql.data(
        "query($id: ID!) { saleClaim(id: $id) { riskFlags { kind } } }", {"id": second},
        as_user=tenant.user(Role.CHANNEL_MANAGER),
    )  # fmt: skip
    assert flags["saleClaim"]["riskFlags"] == [{"kind": "REUSED_PROOF_FILE"}]


async def test_one_file_mapped_to_two_variables_reaches_both_whole(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """The multipart request spec lets `map` put one file at several paths (extract-files,
    under apollo-upload-client, sends a File used for two variables so): each field gets
    the whole file. The second read got what the first left, nothing: EMPTY_FILE."""
    await seed_registry(db, clock, tenant, 6)
    claim_id = await _claim(gql, tenant, clock)
    query = """
    mutation($id: ID!, $a: Upload!, $b: Upload!) {
      a: saleClaimAttachProof(input: {id: $id, file: $a}) { userErrors { code } }
      b: saleClaimAttachProof(input: {id: $id, file: $b}) {
        saleClaim { attachments { size sha256 } }
        userErrors { code }
      }
    }"""
    operations = {"query": query, "variables": {"id": claim_id, "a": None, "b": None}}
    response = await gql.client.post(
        "/graphql",
        data={
            "operations": json.dumps(operations),
            "map": json.dumps({"1": ["variables.a", "variables.b"]}),
        },
        files={"1": ("invoice.pdf", PDF, "application/pdf")},
        headers={"authorization": f"Bearer {gql.token(tenant.user(Role.PARTNER_REP, 0))}"},
    )
    data = response.json()["data"]
    assert data["a"]["userErrors"] == []
    assert data["b"]["userErrors"] == []
    whole = {"size": len(PDF), "sha256": hashlib.sha256(PDF).hexdigest()}
    assert data["b"]["saleClaim"]["attachments"] == [whole, whole]
