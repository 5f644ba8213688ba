"""Several proof files in one request (`files: [Upload!]` on both attach inputs, `proofs`
on saleClaimCreate and dealRegistrationSubmit), through GraphQL multipart over HTTP: who
may, all or nothing, the per-owner limit, idempotent retries, and the multipart request
spec's edge cases (one file at two paths, a path into something that is no list, a path
past the list, a part missing, more parts than the map names, the body limit)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import func, select

from deal_registration import attachments
from deal_registration.attachments import MAX_ATTACHMENTS_PER_OWNER, Attachment, ProofFile
from deal_registration.registrations import proof as deal_proof
from deal_registration.sales.models import SaleClaim, SaleClaimDecision
from deal_registration.storage import LocalStorage, StorageUnavailable
from infra.clock import OffsetClock
from infra.db import Database
from infra.errors import DomainError, DomainErrors
from infra.outbox import OutboxEvent
from partners.models import User
from partners.roles import Role
from schema.context import Services
from tests.deal_registration.registrations.scenarios import register, snapshot, submit_input
from tests.deal_registration.sales.scenarios import CREATE, claim_input, seed_registry
from tests.factories import EXE, JPEG, PDF, PNG, Tenant, add_products, gid, principal_of
from tests.support import GQL, count_rows, error_codes, names_input_field

SALE_ATTACH = """
mutation($input: SaleClaimAttachProofInput!) {
  saleClaimAttachProof(input: $input) {
    saleClaim { id state attachments { filename size sha256 downloadUrl } }
    userErrors { field code message }
  }
}"""

DEAL_ATTACH = """
mutation($input: DealRegistrationAttachProofInput!) {
  dealRegistrationAttachProof(input: $input) {
    dealRegistration { id attachments { filename size sha256 } }
    attachment { filename }
    attachments { filename size sha256 downloadUrl }
    userErrors { field code message }
  }
}"""

DEAL_SUBMIT = """
mutation($input: DealRegistrationSubmitInput!) {
  dealRegistrationSubmit(input: $input) {
    dealRegistration { id status attachments { filename sha256 } }
    userErrors { field code }
  }
}"""

CLAIM_CREATE = """
mutation($input: SaleClaimCreateInput!) {
  saleClaimCreate(input: $input) {
    saleClaim { id state attachments { filename sha256 } }
    userErrors { field code }
  }
}"""

Part = tuple[str, bytes, str]


def pdf(label: str) -> bytes:
    """A distinct PDF (its own SHA-256)."""
    return PDF + f"\n% {label}\n".encode()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def send(
    gql: GQL,
    query: str,
    variables: dict[str, Any],
    files_map: dict[str, list[str]],
    parts: dict[str, Part],
    user: User | None,
) -> httpx.Response:
    """A multipart request exactly as given: `map` and the file parts need not agree."""
    headers = {"authorization": f"Bearer {gql.token(user)}"} if user else {}
    return await gql.client.post(
        "/graphql",
        data={
            "operations": json.dumps({"query": query, "variables": variables}),
            "map": json.dumps(files_map),
        },
        files=parts,
        headers=headers,
    )


async def send_list(
    gql: GQL,
    query: str,
    input: dict[str, Any],
    field: str,
    files: Sequence[Part],
    user: User | None,
) -> dict[str, Any]:
    """`input.<field>` a list of the files, each its own part (as extract-files sends it)."""
    response = await send(
        gql, query, {"input": {**input, field: [None] * len(files)}},
        {str(i): [f"variables.input.{field}.{i}"] for i in range(len(files))},
        {str(i): f for i, f in enumerate(files)}, user,
    )  # fmt: skip
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def _stored_files(gql: GQL) -> list[Path]:
    root = gql.settings.var_dir / "attachments"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


async def _counts(db: Database) -> dict[str, int]:
    """What a refused upload must leave as it was (events: the operation's own kinds)."""
    async with db.session() as session:
        counted = {}
        for model in (Attachment, SaleClaim, SaleClaimDecision):
            counted[model.__name__] = int(
                await session.scalar(select(func.count()).select_from(model)) or 0
            )
        counted["events"] = int(
            await session.scalar(
                select(func.count())
                .select_from(OutboxEvent)
                .where(OutboxEvent.type.like("Sale%") | OutboxEvent.type.like("Deal%"))  # type: ignore[attr-defined]
            )
            or 0
        )
        return counted


@pytest.fixture
async def claim_id(gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant) -> str:
    """A claim of partner 0's rep, waiting for proof."""
    await seed_registry(db, clock, tenant, 20)
    data = await gql.data(
        CREATE,
        {"input": claim_input(["SN000001"], clock)},
        as_user=tenant.user(Role.PARTNER_REP, 0),
    )
    claim = data["saleClaimCreate"]["saleClaim"]
    assert claim["state"] == "NEEDS_PROOF"
    found: str = claim["id"]
    return found


@pytest.fixture
async def deal_id(db: Database, clock: OffsetClock, tenant: Tenant) -> str:
    async with db.transaction() as session:
        await add_products(session, clock, tenant)
    return gid(await register(db, clock, tenant.user(Role.PARTNER_REP, 0)))


def _sale(answer: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = answer["data"]["saleClaimAttachProof"]
    return result


def _deal(answer: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = answer["data"]["dealRegistrationAttachProof"]
    return result


def _errors(result: dict[str, Any]) -> list[tuple[str | None, str]]:
    return [(e["field"], e["code"]) for e in result["userErrors"]]


# -- both owners: who may, all or nothing, the limit ------------------------------------


async def test_a_claim_takes_two_files_in_one_request_and_moves_on_once(
    gql: GQL, db: Database, tenant: Tenant, claim_id: str
) -> None:
    rep = tenant.user(Role.PARTNER_REP, 0)
    invoice, note = pdf("invoice"), PNG
    files = [("invoice.pdf", invoice, "application/pdf"), ("delivery note.png", note, "image/png")]
    result = _sale(await send_list(gql, SALE_ATTACH, {"id": claim_id}, "files", files, rep))
    assert result["userErrors"] == []
    claim = result["saleClaim"]
    assert claim["state"] != "NEEDS_PROOF"
    assert [(a["filename"], a["size"], a["sha256"]) for a in claim["attachments"]] == [
        ("invoice.pdf", len(invoice), _sha(invoice)),
        ("delivery note.png", len(note), _sha(note)),
    ]
    for attachment, data in zip(claim["attachments"], (invoice, note), strict=True):
        got = await gql.client.get(
            attachment["downloadUrl"], headers={"authorization": f"Bearer {gql.token(rep)}"}
        )
        assert got.content == data
    async with db.session() as session:
        actions = list(await session.exec(select(SaleClaimDecision.action)))
    assert [a.value for a in actions].count("PROOF_ADDED") == 1  # one move for two files


async def test_a_deal_registration_takes_a_list_and_answers_each_file(
    gql: GQL, tenant: Tenant, deal_id: str
) -> None:
    files = [("a.pdf", pdf("a"), "application/pdf"), ("b.jpg", JPEG, "image/jpeg")]
    result = _deal(
        await send_list(
            gql, DEAL_ATTACH, {"id": deal_id}, "files", files, tenant.user(Role.PARTNER_ADMIN, 0)
        )
    )
    assert result["userErrors"] == []
    assert [a["filename"] for a in result["attachments"]] == ["a.pdf", "b.jpg"]
    assert result["attachment"] == {"filename": "a.pdf"}  # the first, as before lists
    assert [a["sha256"] for a in result["dealRegistration"]["attachments"]] == [
        _sha(pdf("a")),
        _sha(JPEG),
    ]


@pytest.mark.parametrize("owner", ["sale", "deal"])
@pytest.mark.parametrize(
    "role", [Role.PARTNER_REP, Role.PARTNER_ADMIN, Role.CHANNEL_MANAGER, Role.VENDOR_ADMIN]
)
async def test_allowed_roles_attach_a_list(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, owner: str, role: Role
) -> None:
    user = tenant.user(role, 0)
    files = [("1.pdf", pdf("1"), "application/pdf"), ("2.pdf", pdf("2"), "application/pdf")]
    if owner == "sale":
        await seed_registry(db, clock, tenant, 6)
        data = await gql.data(
            CREATE, {"input": claim_input(["SN000001"], clock)},
            as_user=tenant.user(Role.PARTNER_REP, 0),
        )  # fmt: skip
        target = data["saleClaimCreate"]["saleClaim"]["id"]
        result = _sale(await send_list(gql, SALE_ATTACH, {"id": target}, "files", files, user))
    else:
        async with db.transaction() as session:
            await add_products(session, clock, tenant)
        target = gid(await register(db, clock, tenant.user(Role.PARTNER_REP, 0)))
        result = _deal(await send_list(gql, DEAL_ATTACH, {"id": target}, "files", files, user))
    assert result["userErrors"] == []
    assert await count_rows(db, Attachment) == 2


@pytest.mark.parametrize("owner", ["sale", "deal"])
async def test_denied_callers_store_nothing(
    gql: GQL,
    db: Database,
    clock: OffsetClock,
    tenant: Tenant,
    other_tenant: Tenant,
    owner: str,
) -> None:
    if owner == "sale":
        await seed_registry(db, clock, tenant, 6)
        data = await gql.data(
            CREATE, {"input": claim_input(["SN000001"], clock)},
            as_user=tenant.user(Role.PARTNER_REP, 0),
        )  # fmt: skip
        target, query, pick = data["saleClaimCreate"]["saleClaim"]["id"], SALE_ATTACH, _sale
    else:
        async with db.transaction() as session:
            await add_products(session, clock, tenant)
        target = gid(await register(db, clock, tenant.user(Role.PARTNER_REP, 0)))
        query, pick = DEAL_ATTACH, _deal
    files = [("1.pdf", pdf("1"), "application/pdf"), ("2.pdf", pdf("2"), "application/pdf")]
    before, stored = await _counts(db), _stored_files(gql)

    anonymous = await send_list(gql, query, {"id": target}, "files", files, None)
    assert error_codes(anonymous) == ["UNAUTHENTICATED"]
    finance = await send_list(gql, query, {"id": target}, "files", files, tenant.user(Role.FINANCE))
    assert error_codes(finance) == ["FORBIDDEN"]
    for stranger in (
        tenant.user(Role.PARTNER_REP, 1),  # another partner of the vendor
        tenant.user(Role.PARTNER_ADMIN, 1),
        other_tenant.user(Role.VENDOR_ADMIN),  # another vendor
        other_tenant.user(Role.PARTNER_ADMIN, 0),  # another vendor's partner
    ):
        answer = pick(await send_list(gql, query, {"id": target}, "files", files, stranger))
        # answered like a record that does not exist
        assert [code for _, code in _errors(answer)] == ["NOT_FOUND"], stranger.role
    assert await _counts(db) == before
    assert _stored_files(gql) == stored


@pytest.mark.parametrize("owner", ["sale", "deal"])
async def test_one_bad_file_stores_none_and_is_named_by_its_index(
    gql: GQL, db: Database, tenant: Tenant, claim_id: str, deal_id: str, owner: str
) -> None:
    query, target, pick = (
        (SALE_ATTACH, claim_id, _sale) if owner == "sale" else (DEAL_ATTACH, deal_id, _deal)
    )
    rep = tenant.user(Role.PARTNER_REP, 0)
    before, stored = await _counts(db), _stored_files(gql)
    files = [
        ("ok.pdf", pdf("ok"), "application/pdf"),
        ("also ok.png", PNG, "image/png"),
        ("invoice.pdf", EXE, "application/pdf"),  # an .exe renamed
    ]
    result = pick(await send_list(gql, query, {"id": target}, "files", files, rep))
    assert _errors(result) == [("files.2", "UNSUPPORTED_FILE_TYPE")]
    mutation = "saleClaimAttachProof" if owner == "sale" else "dealRegistrationAttachProof"
    assert names_input_field(mutation, "files.2")
    # Every bad file is named, each by its index.
    files = [
        ("empty.pdf", b"", "application/pdf"),
        ("ok.pdf", pdf("ok"), "application/pdf"),
        ("../up.pdf", PDF, "application/pdf"),
        ("big.pdf", PDF + b"\x00" * (4 << 20), "application/pdf"),
    ]
    result = pick(await send_list(gql, query, {"id": target}, "files", files, rep))
    assert _errors(result) == [("files.0", "EMPTY_FILE"), ("files.2", "INVALID_FILENAME")]
    assert await _counts(db) == before
    assert _stored_files(gql) == stored


@pytest.mark.parametrize("owner", ["sale", "deal"])
async def test_exactly_one_of_file_and_files(
    gql: GQL, db: Database, tenant: Tenant, claim_id: str, deal_id: str, owner: str
) -> None:
    query, target, pick = (
        (SALE_ATTACH, claim_id, _sale) if owner == "sale" else (DEAL_ATTACH, deal_id, _deal)
    )
    rep = tenant.user(Role.PARTNER_REP, 0)
    before, stored = await _counts(db), _stored_files(gql)
    neither = await gql(query, {"input": {"id": target}}, as_user=rep)
    assert _errors(pick(neither)) == [("file", "REQUIRED")]
    empty = await gql(query, {"input": {"id": target, "files": []}}, as_user=rep)
    assert _errors(pick(empty)) == [("files", "REQUIRED")]
    part = ("a.pdf", PDF, "application/pdf")
    both = await send(
        gql, query, {"input": {"id": target, "file": None, "files": [None]}},
        {"0": ["variables.input.file"], "1": ["variables.input.files.0"]}, {"0": part, "1": part},
        rep,
    )  # fmt: skip
    assert _errors(pick(both.json())) == [("files", "CONFLICTING_UPLOADS")]
    assert await _counts(db) == before
    assert _stored_files(gql) == stored


@pytest.mark.parametrize("owner", ["sale", "deal"])
async def test_the_limit_counts_the_files_held_and_every_new_one(
    gql: GQL, db: Database, tenant: Tenant, claim_id: str, deal_id: str, owner: str
) -> None:
    query, target, pick = (
        (SALE_ATTACH, claim_id, _sale) if owner == "sale" else (DEAL_ATTACH, deal_id, _deal)
    )
    rep = tenant.user(Role.PARTNER_REP, 0)
    held = [
        (f"{i}.pdf", pdf(str(i)), "application/pdf") for i in range(MAX_ATTACHMENTS_PER_OWNER - 2)
    ]
    assert _errors(pick(await send_list(gql, query, {"id": target}, "files", held, rep))) == []
    before, stored = await _counts(db), _stored_files(gql)
    three = [(f"x{i}.pdf", pdf(f"x{i}"), "application/pdf") for i in range(3)]
    refused = pick(await send_list(gql, query, {"id": target}, "files", three, rep))
    assert _errors(refused) == [("files", "TOO_MANY_ATTACHMENTS")]
    assert await _counts(db) == before
    assert _stored_files(gql) == stored
    result = pick(await send_list(gql, query, {"id": target}, "files", three[:2], rep))
    assert _errors(result) == []
    assert await count_rows(db, Attachment) == MAX_ATTACHMENTS_PER_OWNER
    one_more = await send(
        gql, query, {"input": {"id": target, "file": None}},
        {"0": ["variables.input.file"]}, {"0": ("y.pdf", PDF, "application/pdf")}, rep,
    )  # fmt: skip
    assert _errors(pick(one_more.json())) == [("file", "TOO_MANY_ATTACHMENTS")]


async def test_a_list_longer_than_the_limit_is_refused_before_anything_is_read(
    gql: GQL, db: Database, tenant: Tenant, claim_id: str
) -> None:
    """One file mapped to many list paths (extract-files sends a File used several times
    so): refused by the count before a byte is read, so a long list of one large part
    cannot make the server hold copies of it."""
    n = MAX_ATTACHMENTS_PER_OWNER + 1
    paths = [f"variables.input.files.{i}" for i in range(n)]
    response = await send(
        gql, SALE_ATTACH, {"input": {"id": claim_id, "files": [None] * n}}, {"0": paths},
        {"0": ("big.pdf", PDF + b"\x00" * (5 << 20), "application/pdf")},
        tenant.user(Role.PARTNER_REP, 0),
    )  # fmt: skip
    assert _errors(_sale(response.json())) == [("files", "TOO_MANY_ATTACHMENTS")]
    assert await count_rows(db, Attachment) == 0


# -- the submit inputs: proofs, idempotency ----------------------------------------------


async def test_a_claim_is_created_with_proofs_and_a_retry_stores_nothing_more(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    await seed_registry(db, clock, tenant, 6)
    rep = tenant.user(Role.PARTNER_REP, 0)
    base = claim_input(["SN000001"], clock, idempotencyKey="two-files")
    files = [("a.pdf", pdf("a"), "application/pdf"), ("b.png", PNG, "image/png")]
    first = (await send_list(gql, CLAIM_CREATE, base, "proofs", files, rep))["data"]
    claim = first["saleClaimCreate"]["saleClaim"]
    assert [a["sha256"] for a in claim["attachments"]] == [_sha(pdf("a")), _sha(PNG)]
    assert claim["state"] != "NEEDS_PROOF"
    stored = _stored_files(gql)
    retried = (await send_list(gql, CLAIM_CREATE, base, "proofs", files, rep))["data"]
    assert retried["saleClaimCreate"]["saleClaim"]["id"] == claim["id"]
    assert _stored_files(gql) == stored
    assert await count_rows(db, Attachment) == 2
    # Other files (or the same in another order) under the key: another request.
    for other in (files[::-1], files[:1]):
        refused = (await send_list(gql, CLAIM_CREATE, base, "proofs", other, rep))["data"]
        assert _errors(refused["saleClaimCreate"]) == [("idempotencyKey", "IDEMPOTENCY_KEY_REUSED")]
    assert await count_rows(db, Attachment) == 2
    assert _stored_files(gql) == stored
    # One bad proof: no claim either, the file named in `proofs`.
    bad = [files[0], ("x.pdf", EXE, "application/pdf")]
    before = await _counts(db)
    answer = await send_list(
        gql, CLAIM_CREATE, claim_input(["SN000002"], clock), "proofs", bad, rep
    )
    assert _errors(answer["data"]["saleClaimCreate"]) == [("proofs.1", "UNSUPPORTED_FILE_TYPE")]
    assert await _counts(db) == before
    assert _stored_files(gql) == stored


async def test_a_single_proof_keeps_its_idempotency_fingerprint(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """`proof: X` and `proofs: [X]` are the same request: a retry of a key taken before
    lists (with `proof`) is answered with its claim whichever field the retry uses."""
    await seed_registry(db, clock, tenant, 6)
    rep = tenant.user(Role.PARTNER_REP, 0)
    base = claim_input(["SN000001"], clock, idempotencyKey="one-file")
    part = ("a.pdf", PDF, "application/pdf")
    first = await send(
        gql, CLAIM_CREATE, {"input": {**base, "proof": None}}, {"0": ["variables.input.proof"]},
        {"0": part}, rep,
    )  # fmt: skip
    claim_id = first.json()["data"]["saleClaimCreate"]["saleClaim"]["id"]
    again = (await send_list(gql, CLAIM_CREATE, base, "proofs", [part], rep))["data"]
    assert again["saleClaimCreate"]["saleClaim"]["id"] == claim_id
    assert await count_rows(db, Attachment) == 1


@pytest.mark.parametrize("draft", [False, True])
async def test_a_deal_is_submitted_with_proofs(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, draft: bool
) -> None:
    async with db.transaction() as session:
        await add_products(session, clock, tenant)
    rep = tenant.user(Role.PARTNER_REP, 0)
    base = {**submit_input(clock), "asDraft": draft, "idempotencyKey": "deal-two"}
    files = [("a.pdf", pdf("a"), "application/pdf"), ("b.jpg", JPEG, "image/jpeg")]
    result = (await send_list(gql, DEAL_SUBMIT, base, "proofs", files, rep))["data"]
    deal = result["dealRegistrationSubmit"]["dealRegistration"]
    assert deal["status"] == ("DRAFT" if draft else "SUBMITTED")
    assert [a["filename"] for a in deal["attachments"]] == ["a.pdf", "b.jpg"]
    stored = _stored_files(gql)
    retried = (await send_list(gql, DEAL_SUBMIT, base, "proofs", files, rep))["data"]
    assert retried["dealRegistrationSubmit"]["dealRegistration"]["id"] == deal["id"]
    assert _stored_files(gql) == stored
    # Both fields at once: refused, nothing registered.
    before = await snapshot(db)
    part = ("c.pdf", PDF, "application/pdf")
    both = await send(
        gql, DEAL_SUBMIT, {"input": {**submit_input(clock), "proof": None, "proofs": [None]}},
        {"0": ["variables.input.proof", "variables.input.proofs.0"]}, {"0": part}, rep,
    )  # fmt: skip
    assert _errors(both.json()["data"]["dealRegistrationSubmit"]) == [
        ("proofs", "CONFLICTING_UPLOADS")
    ]
    bad = [files[0], ("empty.pdf", b"", "application/pdf")]
    answer = await send_list(gql, DEAL_SUBMIT, submit_input(clock), "proofs", bad, rep)
    assert _errors(answer["data"]["dealRegistrationSubmit"]) == [("proofs.1", "EMPTY_FILE")]
    assert await snapshot(db) == before
    assert _stored_files(gql) == stored


# -- the multipart request spec's edge cases ------------------------------------------


async def test_one_file_at_two_list_paths_is_stored_twice_whole(
    gql: GQL, tenant: Tenant, claim_id: str
) -> None:
    response = await send(
        gql, SALE_ATTACH, {"input": {"id": claim_id, "files": [None, None]}},
        {"0": ["variables.input.files.0", "variables.input.files.1"]},
        {"0": ("same.pdf", PDF, "application/pdf")}, tenant.user(Role.PARTNER_REP, 0),
    )  # fmt: skip
    result = _sale(response.json())
    assert result["userErrors"] == []
    assert [(a["size"], a["sha256"]) for a in result["saleClaim"]["attachments"]] == [
        (len(PDF), _sha(PDF))
    ] * 2


@pytest.mark.parametrize(
    ("files_value", "files_map", "parts"),
    [
        # a list path into `files` that is null, or a string: not a list
        (None, {"0": ["variables.input.files.0"]}, {"0"}),
        ("x", {"0": ["variables.input.files.0"]}, {"0"}),
        # more files in the map than the list holds
        ([None], {"0": ["variables.input.files.0"], "1": ["variables.input.files.1"]}, {"0", "1"}),
        # a part the map names is missing
        ([None, None], {"0": ["variables.input.files.0"], "1": ["variables.input.files.1"]}, {"0"}),
    ],
    ids=["files-null", "files-a-string", "path-past-the-list", "missing-part"],
)
async def test_a_map_that_does_not_fit_the_list_is_a_coded_400_and_stores_nothing(
    gql: GQL,
    db: Database,
    tenant: Tenant,
    claim_id: str,
    files_value: Any,
    files_map: dict[str, list[str]],
    parts: set[str],
) -> None:
    before, stored = await _counts(db), _stored_files(gql)
    response = await send(
        gql, SALE_ATTACH, {"input": {"id": claim_id, "files": files_value}}, files_map,
        {k: (f"{k}.pdf", pdf(k), "application/pdf") for k in sorted(parts)},
        tenant.user(Role.PARTNER_REP, 0),
    )  # fmt: skip
    assert response.status_code == 400, response.text
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "BAD_REQUEST"
    assert error["message"].startswith("Malformed multipart request")
    assert await _counts(db) == before
    assert _stored_files(gql) == stored


async def test_a_part_the_map_does_not_name_is_ignored(
    gql: GQL, tenant: Tenant, claim_id: str
) -> None:
    response = await send(
        gql, SALE_ATTACH, {"input": {"id": claim_id, "files": [None]}},
        {"0": ["variables.input.files.0"]},
        {"0": ("used.pdf", PDF, "application/pdf"), "1": ("extra.pdf", PNG, "image/png")},
        tenant.user(Role.PARTNER_REP, 0),
    )  # fmt: skip
    result = _sale(response.json())
    assert result["userErrors"] == []
    assert [a["filename"] for a in result["saleClaim"]["attachments"]] == ["used.pdf"]


async def test_a_string_in_the_list_is_no_upload(
    gql: GQL, db: Database, tenant: Tenant, claim_id: str
) -> None:
    answer = await gql(
        SALE_ATTACH, {"input": {"id": claim_id, "files": ["%PDF-1.4"]}},
        as_user=tenant.user(Role.PARTNER_REP, 0),
    )  # fmt: skip
    assert error_codes(answer) == ["GRAPHQL_VALIDATION_FAILED"], answer
    assert "data" not in answer
    assert await count_rows(db, Attachment) == 0


async def test_the_body_limit_holds_for_the_whole_list(
    gql: GQL, db: Database, tenant: Tenant, claim_id: str
) -> None:
    """Each file under the per-file limit, the request over the body's (the upload limit +
    1 MiB): 413 PAYLOAD_TOO_LARGE, as for one file, and nothing is stored."""
    big = PDF + b"\x00" * (6 << 20)
    stored = _stored_files(gql)
    files = [("a.pdf", big, "application/pdf"), ("b.pdf", big + b"b", "application/pdf")]
    response = await send(
        gql, SALE_ATTACH, {"input": {"id": claim_id, "files": [None, None]}},
        {"0": ["variables.input.files.0"], "1": ["variables.input.files.1"]},
        {"0": files[0], "1": files[1]}, tenant.user(Role.PARTNER_REP, 0),
    )  # fmt: skip
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
    assert await count_rows(db, Attachment) == 0
    assert _stored_files(gql) == stored


# -- a store failing mid-list -------------------------------------------------------------


class FailsOnSecondPut(LocalStorage):
    """The real local store, refusing its second write (a disk that fills up mid-request)."""

    puts = 0

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        self.puts += 1
        if self.puts == 2:
            raise StorageUnavailable(f"cannot store {key}: no space left on device")
        await super().put(key, data, content_type)


async def test_a_store_failing_mid_list_leaves_no_file_and_no_row(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant, tmp_path: Path
) -> None:
    """Before lists a request wrote one file, last; with several, the first written stays
    when a later one fails: it is removed at once (not a day later by the sweep)."""
    async with db.transaction() as session:
        await add_products(session, clock, tenant)
    registration = await register(db, clock, tenant.user(Role.PARTNER_REP, 0))
    storage = FailsOnSecondPut(tmp_path / "store")
    files = [ProofFile("a.pdf", pdf("a"), "files.0"), ProofFile("b.pdf", pdf("b"), "files.1")]
    with pytest.raises(StorageUnavailable):
        async with db.transaction() as session:
            await deal_proof.attach_proof(
                session, principal_of(tenant.user(Role.PARTNER_REP, 0)), clock, storage,
                registration_id=registration.id, proof_files=files,
            )  # fmt: skip
    assert storage.puts == 2
    assert [p for p in (tmp_path / "store").rglob("*") if p.is_file()] == []
    assert await count_rows(db, Attachment) == 0


def test_a_list_is_judged_whole_by_the_service() -> None:
    files = [ProofFile("a.pdf", PDF, "files.0"), ProofFile("b.txt", b"text", "files.1")]
    with pytest.raises(DomainErrors) as refused:
        attachments.check_proofs(files, 1 << 20)
    [error] = refused.value.errors
    assert isinstance(error, DomainError)
    assert (error.field, error.code) == (
        "files.1",
        attachments.AttachmentErrorCode.UNSUPPORTED_FILE_TYPE,
    )
