"""Proof files on deal registrations (GraphQL multipart) and their downloads: who may attach,
who may download, upload attacks, closed registrations, the per-registration limit."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from deal_registration.attachments import (
    MAX_ATTACHMENTS_PER_OWNER,
    Attachment,
    AttachmentErrorCode,
    ProofFile,
)
from deal_registration.registrations import outcome, proof, review
from deal_registration.registrations.errors import DealRegistrationErrorCode
from deal_registration.registrations.models import DealRegistration
from deal_registration.sales.errors import SaleClaimErrorCode
from infra.clock import OffsetClock
from infra.db import Database
from infra.errors import DomainError
from partners.models import User
from partners.roles import Principal, Role
from schema.context import Services
from tests.deal_registration.registrations.scenarios import register, snapshot, submit_input
from tests.factories import (
    EXE,
    JPEG,
    PDF,
    PNG,
    Tenant,
    add_products,
    blocked_on_a_lock,
    gid,
    principal_of,
)
from tests.support import GQL, count_rows, error_codes, multipart

ATTACH = """
mutation($input: DealRegistrationAttachProofInput!) {
  dealRegistrationAttachProof(input: $input) {
    dealRegistration { id status attachments { id filename } }
    attachment { id filename contentType size sha256 downloadUrl }
    userErrors { field code message }
  }
}"""

DEAL_ATTACHMENTS = """
query($id: ID!) { deal(id: $id) { id attachments { id filename downloadUrl } } }
"""


@pytest.fixture
async def catalogue(db: Database, clock: OffsetClock, tenant: Tenant) -> Tenant:
    async with db.transaction() as session:
        await add_products(session, clock, tenant)
    return tenant


def _stored_files(gql: GQL) -> list[Path]:
    root = gql.settings.var_dir / "attachments"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


async def _attach(
    gql: GQL, user: User | None, deal_id: str, name: str = "invoice.pdf", data: bytes = PDF
) -> dict[str, Any]:
    response = await multipart(
        gql, ATTACH, {"input": {"id": deal_id, "file": None}},
        {"variables.input.file": (name, data, "application/pdf")},
        token=gql.token(user) if user else None,
    )  # fmt: skip
    assert response.status_code == 200, response.text
    payload: dict[str, Any] = response.json()
    return payload


def _result(payload: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = payload["data"]["dealRegistrationAttachProof"]
    return result


def _codes(payload: dict[str, Any]) -> list[tuple[str | None, str]]:
    return [(e["field"], e["code"]) for e in _result(payload)["userErrors"]]


async def _nothing_changed(
    gql: GQL, db: Database, registration: DealRegistration, before: dict[str, Any], files: Any
) -> None:
    assert await count_rows(db, Attachment) == 0
    assert _stored_files(gql) == files
    assert await snapshot(db, registration.id) == before


async def test_partner_users_and_reviewers_attach_and_see_the_files(
    gql: GQL, db: Database, clock: OffsetClock, catalogue: Tenant
) -> None:
    rep = catalogue.user(Role.PARTNER_REP, 0)
    registration = await register(db, clock, rep)
    attached = await _attach(gql, rep, gid(registration), "My invoice <1>.PDF", PNG)
    result = _result(attached)
    assert result["userErrors"] == []
    attachment = result["attachment"]
    assert attachment["filename"] == "My invoice _1.png"  # the content decides the type
    assert attachment["contentType"] == "image/png"
    assert attachment["size"] == len(PNG)
    assert attachment["sha256"] == hashlib.sha256(PNG).hexdigest()
    assert attachment["downloadUrl"] == f"/attachments/{attachment['id']}"
    assert result["dealRegistration"]["attachments"] == [
        {"id": attachment["id"], "filename": "My invoice _1.png"}
    ]
    for user in (
        catalogue.user(Role.PARTNER_ADMIN, 0),
        catalogue.user(Role.CHANNEL_MANAGER),  # assigned to partner 0
        catalogue.user(Role.VENDOR_ADMIN),
    ):
        assert _codes(await _attach(gql, user, gid(registration), "scan.jpg", JPEG)) == []
    seen = await gql.data(DEAL_ATTACHMENTS, {"id": gid(registration)}, as_user=rep)
    assert len(seen["deal"]["attachments"]) == 4
    async with db.session() as session:
        rows = await session.exec(select(Attachment))
        assert {a.owner_kind for a in rows} == {"deal_registration"}


async def test_download_only_for_those_who_see_the_registration(
    gql: GQL, db: Database, clock: OffsetClock, catalogue: Tenant, other_tenant: Tenant
) -> None:
    registration = await register(db, clock, catalogue.user(Role.PARTNER_REP, 0))
    payload = await _attach(gql, catalogue.user(Role.PARTNER_REP, 0), gid(registration))
    url = _result(payload)["attachment"]["downloadUrl"]

    async def get(user: User | None) -> int:
        headers = {"authorization": f"Bearer {gql.token(user)}"} if user else {}
        response = await gql.client.get(url, headers=headers)
        if response.status_code == 200:
            assert response.content == PDF
            assert response.headers["content-type"] == "application/pdf"
            assert response.headers["content-disposition"] == 'attachment; filename="invoice.pdf"'
        return response.status_code

    for user in (
        catalogue.user(Role.PARTNER_REP, 0),
        catalogue.user(Role.PARTNER_ADMIN, 0),
        catalogue.user(Role.CHANNEL_MANAGER),
        catalogue.user(Role.VENDOR_ADMIN),
        catalogue.user(Role.FINANCE),
    ):
        assert await get(user) == 200, user.role
    for user in (
        catalogue.user(Role.PARTNER_REP, 1),
        catalogue.user(Role.PARTNER_ADMIN, 1),
        other_tenant.user(Role.VENDOR_ADMIN),
        other_tenant.user(Role.PARTNER_ADMIN, 0),
    ):
        assert await get(user) == 404, user.role  # exactly like a file that does not exist
    missing = await gql.client.get(
        "/attachments/00000000-0000-7000-8000-000000000000",
        headers={"authorization": f"Bearer {gql.token(catalogue.user(Role.PARTNER_ADMIN, 1))}"},
    )
    denied = await gql.client.get(
        url, headers={"authorization": f"Bearer {gql.token(catalogue.user(Role.PARTNER_ADMIN, 1))}"}
    )
    assert (denied.status_code, denied.json()) == (missing.status_code, missing.json())
    assert await get(None) == 401
    # Another partner never learns of the file through the registration either.
    hidden = await gql.data(
        DEAL_ATTACHMENTS,
        {"id": gid(registration)},
        as_user=catalogue.user(Role.PARTNER_ADMIN, 1),
    )
    assert hidden["deal"] is None


async def test_who_may_not_attach_changes_nothing(
    gql: GQL, db: Database, clock: OffsetClock, catalogue: Tenant, other_tenant: Tenant
) -> None:
    registration = await register(db, clock, catalogue.user(Role.PARTNER_REP, 0))
    before, files = await snapshot(db, registration.id), _stored_files(gql)
    finance = await _attach(gql, catalogue.user(Role.FINANCE), gid(registration))
    assert error_codes(finance) == ["FORBIDDEN"]
    anonymous = await _attach(gql, None, gid(registration))
    assert error_codes(anonymous) == ["UNAUTHENTICATED"]
    for user in (
        catalogue.user(Role.PARTNER_REP, 1),
        catalogue.user(Role.PARTNER_ADMIN, 1),
        other_tenant.user(Role.VENDOR_ADMIN),
        other_tenant.user(Role.PARTNER_ADMIN, 0),
    ):
        refused = await _attach(gql, user, gid(registration))
        assert _codes(refused) == [("id", "NOT_FOUND")], user.role
        assert _result(refused)["dealRegistration"] is None
    malformed = await _attach(gql, catalogue.user(Role.PARTNER_REP, 0), "not-an-id")
    assert _codes(malformed) == [("id", "NOT_FOUND")]
    await _nothing_changed(gql, db, registration, before, files)


@pytest.mark.parametrize(
    ("name", "data", "code"),
    [
        ("invoice.pdf", EXE, "UNSUPPORTED_FILE_TYPE"),  # an .exe renamed .pdf
        ("invoice.pdf", b"", "EMPTY_FILE"),
        ("../../etc/passwd.pdf", PDF, "INVALID_FILENAME"),
        ("..\\..\\boot.ini.pdf", PDF, "INVALID_FILENAME"),
        ("invoice.pdf", PDF + b"\x00" * (10 << 20), "FILE_TOO_LARGE"),
    ],
)
async def test_upload_attacks_are_refused_and_change_nothing(
    gql: GQL,
    db: Database,
    clock: OffsetClock,
    catalogue: Tenant,
    name: str,
    data: bytes,
    code: str,
) -> None:
    rep = catalogue.user(Role.PARTNER_REP, 0)
    registration = await register(db, clock, rep)
    before, files = await snapshot(db, registration.id), _stored_files(gql)
    refused = await _attach(gql, rep, gid(registration), name, data)
    assert _codes(refused) == [("file", code)]
    assert _result(refused)["dealRegistration"] is None
    assert _result(refused)["attachment"] is None
    await _nothing_changed(gql, db, registration, before, files)


async def _withdrawn(db: Database, clock: OffsetClock, tenant: Tenant) -> DealRegistration:
    rep = tenant.user(Role.PARTNER_REP, 0)
    registration = await register(db, clock, rep)
    async with db.transaction() as session:
        return await outcome.withdraw(
            session, principal_of(rep), clock, registration_id=registration.id, reason="no"
        )


async def _rejected(db: Database, clock: OffsetClock, tenant: Tenant) -> DealRegistration:
    admin = tenant.user(Role.VENDOR_ADMIN)
    registration = await register(db, clock, tenant.user(Role.PARTNER_REP, 0), review_as=admin)
    async with db.transaction() as session:
        return await review.reject(
            session, principal_of(admin), clock, registration_id=registration.id, reason="dup"
        )


async def _lost(db: Database, clock: OffsetClock, tenant: Tenant) -> DealRegistration:
    admin = tenant.user(Role.VENDOR_ADMIN)
    registration = await register(db, clock, tenant.user(Role.PARTNER_REP, 0), approve_as=admin)
    async with db.transaction() as session:
        return await outcome.mark_lost(
            session, principal_of(admin), clock, registration_id=registration.id, reason=""
        )


async def _expired(db: Database, clock: OffsetClock, tenant: Tenant) -> DealRegistration:
    admin = tenant.user(Role.VENDOR_ADMIN)
    registration = await register(db, clock, tenant.user(Role.PARTNER_REP, 0), approve_as=admin)
    clock.advance(timedelta(days=91))  # past the default 90-day protection, not yet swept
    return registration


@pytest.mark.parametrize("make", [_withdrawn, _rejected, _lost, _expired])
async def test_a_closed_registration_takes_no_proof(
    gql: GQL, db: Database, clock: OffsetClock, catalogue: Tenant, make: Any
) -> None:
    registration = await make(db, clock, catalogue)
    before, files = await snapshot(db, registration.id), _stored_files(gql)
    for user in (catalogue.user(Role.PARTNER_REP, 0), catalogue.user(Role.VENDOR_ADMIN)):
        refused = await _attach(gql, user, gid(registration))
        assert _codes(refused) == [("id", "INVALID_TRANSITION")]
    await _nothing_changed(gql, db, registration, before, files)


async def test_a_won_deal_takes_its_invoice(
    gql: GQL, db: Database, clock: OffsetClock, catalogue: Tenant
) -> None:
    admin = catalogue.user(Role.VENDOR_ADMIN)
    rep = catalogue.user(Role.PARTNER_REP, 0)
    registration = await register(db, clock, rep, approve_as=admin)
    async with db.transaction() as session:
        await outcome.mark_won(
            session, principal_of(rep), clock, registration_id=registration.id, reason=""
        )
    attached = await _attach(gql, rep, gid(registration))
    assert _codes(attached) == []
    assert _result(attached)["dealRegistration"]["status"] == "WON"


async def test_a_registration_holds_a_limited_number_of_files(
    gql: GQL, db: Database, clock: OffsetClock, catalogue: Tenant
) -> None:
    rep = catalogue.user(Role.PARTNER_REP, 0)
    registration = await register(db, clock, rep)
    for i in range(MAX_ATTACHMENTS_PER_OWNER):
        assert _codes(await _attach(gql, rep, gid(registration), f"inv{i}.pdf")) == []
    files = _stored_files(gql)
    refused = await _attach(gql, rep, gid(registration), "one-more.pdf")
    assert _codes(refused) == [("file", "TOO_MANY_ATTACHMENTS")]
    assert await count_rows(db, Attachment) == MAX_ATTACHMENTS_PER_OWNER
    assert _stored_files(gql) == files


async def test_concurrent_uploads_respect_the_limit(
    gql: GQL, db: Database, clock: OffsetClock, catalogue: Tenant
) -> None:
    """Two uploads racing for the last free place: exactly one gets it (on SQLite and on
    PostgreSQL, whichever the run uses)."""
    rep = catalogue.user(Role.PARTNER_REP, 0)
    admin = catalogue.user(Role.PARTNER_ADMIN, 0)
    registration = await register(db, clock, rep)
    for i in range(MAX_ATTACHMENTS_PER_OWNER - 1):
        assert _codes(await _attach(gql, rep, gid(registration), f"inv{i}.pdf")) == []
    results = await asyncio.gather(
        _attach(gql, rep, gid(registration), "a.pdf"),
        _attach(gql, admin, gid(registration), "b.pdf"),
    )
    assert sorted(str(_codes(r)) for r in results) == sorted(
        ["[]", str([("file", "TOO_MANY_ATTACHMENTS")])]
    )
    assert await count_rows(db, Attachment) == MAX_ATTACHMENTS_PER_OWNER


def test_every_attachment_error_code_maps_onto_both_payloads() -> None:
    for code in AttachmentErrorCode:
        assert DealRegistrationErrorCode(code.value) == code
        assert SaleClaimErrorCode(code.value) == code


async def test_an_upload_waits_for_a_concurrent_one_and_then_finds_no_room(
    services: Services, db: Database, clock: OffsetClock, catalogue: Tenant
) -> None:
    """The first upload holds the last place (uncommitted) while the second runs into it:
    the second waits, then is refused with TOO_MANY_ATTACHMENTS, never an eleventh file."""
    storage = services.storage
    assert storage is not None
    rep = principal_of(catalogue.user(Role.PARTNER_REP, 0))
    admin = principal_of(catalogue.user(Role.PARTNER_ADMIN, 0))
    registration = await register(db, clock, catalogue.user(Role.PARTNER_REP, 0))
    for i in range(MAX_ATTACHMENTS_PER_OWNER - 1):
        async with db.transaction() as session:
            await proof.attach_proof(
                session, rep, clock, storage, registration_id=registration.id,
                proof_files=[ProofFile(f"inv{i}.pdf", PDF)],
            )  # fmt: skip

    async def attach(session: AsyncSession, principal: Principal) -> object:
        return await proof.attach_proof(
            session, principal, clock, storage, registration_id=registration.id,
            proof_files=[ProofFile("last.pdf", PDF)],
        )  # fmt: skip

    async with db.session() as first, db.session() as second:
        await attach(first, rep)
        racing = asyncio.create_task(attach(second, admin))
        await blocked_on_a_lock(first, racing)  # the second waits for the first's row
        await first.commit()
        with pytest.raises(DomainError) as refused:
            await racing
        await second.rollback()
    assert refused.value.code == AttachmentErrorCode.TOO_MANY_ATTACHMENTS
    assert await count_rows(db, Attachment) == MAX_ATTACHMENTS_PER_OWNER


SUBMIT_WITH_PROOF = """
mutation($input: DealRegistrationSubmitInput!) {
  dealRegistrationSubmit(input: $input) {
    dealRegistration { id status attachments { filename contentType downloadUrl } }
    userErrors { field code }
  }
}"""


async def _submit(
    gql: GQL, user: User, clock: OffsetClock, name: str, data: bytes, **extra: Any
) -> dict[str, Any]:
    response = await multipart(
        gql, SUBMIT_WITH_PROOF, {"input": {**submit_input(clock), **extra, "proof": None}},
        {"variables.input.proof": (name, data, "application/pdf")}, token=gql.token(user),
    )  # fmt: skip
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["data"]["dealRegistrationSubmit"]
    return result


async def test_a_registration_is_submitted_with_its_invoice(
    gql: GQL, db: Database, clock: OffsetClock, catalogue: Tenant
) -> None:
    rep = catalogue.user(Role.PARTNER_REP, 0)
    result = await _submit(gql, rep, clock, "invoice.pdf", PDF, idempotencyKey="k-1")
    assert result["userErrors"] == []
    deal = result["dealRegistration"]
    assert deal["status"] == "SUBMITTED"
    [attachment] = deal["attachments"]
    assert (attachment["filename"], attachment["contentType"]) == ("invoice.pdf", "application/pdf")
    download = await gql.client.get(
        attachment["downloadUrl"], headers={"authorization": f"Bearer {gql.token(rep)}"}
    )
    assert download.content == PDF
    # A retry returns the first registration and stores nothing more; another file under
    # the same key is a different request.
    files = _stored_files(gql)
    retried = await _submit(gql, rep, clock, "invoice.pdf", PDF, idempotencyKey="k-1")
    assert retried["dealRegistration"]["id"] == deal["id"]
    assert await count_rows(db, Attachment) == 1
    other = await _submit(gql, rep, clock, "other.png", PNG, idempotencyKey="k-1")
    assert other["userErrors"] == [{"field": "idempotencyKey", "code": "IDEMPOTENCY_KEY_REUSED"}]
    assert await count_rows(db, Attachment) == 1
    assert _stored_files(gql) == files


@pytest.mark.parametrize(
    ("name", "data", "code"),
    [
        ("invoice.pdf", EXE, "UNSUPPORTED_FILE_TYPE"),
        ("../invoice.pdf", PDF, "INVALID_FILENAME"),
        ("invoice.pdf", PDF + b"\x00" * (10 << 20), "FILE_TOO_LARGE"),
    ],
)
async def test_a_submission_with_a_bad_file_registers_nothing(
    gql: GQL,
    db: Database,
    clock: OffsetClock,
    catalogue: Tenant,
    name: str,
    data: bytes,
    code: str,
) -> None:
    before, files = await snapshot(db), _stored_files(gql)
    result = await _submit(gql, catalogue.user(Role.PARTNER_REP, 0), clock, name, data)
    assert result["dealRegistration"] is None
    assert result["userErrors"] == [{"field": "proof", "code": code}]
    assert await snapshot(db) == before
    assert await count_rows(db, Attachment) == 0
    assert _stored_files(gql) == files
