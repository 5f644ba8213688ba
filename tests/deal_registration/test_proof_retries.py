"""Idempotency keys on the attach mutations (`saleClaimAttachProof`,
`dealRegistrationAttachProof`), through GraphQL multipart over HTTP: a client whose
connection dropped after the server committed retries under its key and gets the first
answer, with no new row and no new stored file (even when the owner has moved on since,
or the retry would pass the file limit); other files under the key are
IDEMPOTENCY_KEY_REUSED and change nothing; a key belongs to its caller; refused callers
change nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import func, select

from deal_registration.attachments import Attachment
from deal_registration.registrations.models import DealTransition
from deal_registration.sales.models import SaleClaim, SaleClaimDecision
from infra.clock import OffsetClock
from infra.db import Database
from infra.idempotency import MAX_KEY_LENGTH, IdempotencyKey
from infra.outbox import OutboxEvent
from partners.models import User
from partners.roles import Role
from tests.deal_registration.registrations.scenarios import register
from tests.deal_registration.sales.scenarios import CREATE, claim_input, seed_registry
from tests.deal_registration.test_proof_lists import (
    DEAL_ATTACH,
    SALE_ATTACH,
    Part,
    pdf,
    send,
    send_list,
)
from tests.factories import PNG, Tenant, add_products, gid
from tests.support import GQL, error_codes

OWNERS = ["sale", "deal"]
MUTATION = {"sale": "saleClaimAttachProof", "deal": "dealRegistrationAttachProof"}
QUERY = {"sale": SALE_ATTACH, "deal": DEAL_ATTACH}


def files_of(*labels: str) -> list[Part]:
    return [(f"{label}.pdf", pdf(label), "application/pdf") for label in labels]


async def attach(
    gql: GQL,
    owner: str,
    target: str,
    files: Sequence[Part],
    user: User | None,
    key: str | None = None,
) -> dict[str, Any]:
    """The whole answer of one attach request, `files` as a list (with its key, if any)."""
    body: dict[str, Any] = {"id": target} if key is None else {"id": target, "idempotencyKey": key}
    return await send_list(gql, QUERY[owner], body, "files", files, user)


def result(owner: str, answer: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = answer["data"][MUTATION[owner]]
    return found


async def state(db: Database, gql: GQL) -> dict[str, Any]:
    """Everything a retry or a refused attach must leave as it was: rows, keys, the
    owners' moves and events, and the files in the store."""
    async with db.session() as session:
        counted: dict[str, Any] = {}
        for model in (Attachment, IdempotencyKey, SaleClaim, SaleClaimDecision, DealTransition):
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
    root = gql.settings.var_dir / "attachments"
    counted["stored"] = sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []
    return counted


def stored_files(snapshot: dict[str, Any]) -> list[Path]:
    files: list[Path] = snapshot["stored"]
    return files


async def new_owner(
    gql: GQL,
    db: Database,
    clock: OffsetClock,
    tenant: Tenant,
    owner: str,
    partner: int = 0,
    nth: int = 0,
) -> str:
    """A claim waiting for proof (on the partner's ``nth`` serial), or a submitted
    registration (for the ``nth`` customer), of the partner's rep."""
    rep = tenant.user(Role.PARTNER_REP, partner)
    if owner == "sale":
        serial = f"SN{1 + partner * 5 + nth:06d}"
        data = await gql.data(CREATE, {"input": claim_input([serial], clock)}, as_user=rep)
        claim = data["saleClaimCreate"]["saleClaim"]
        assert claim["state"] == "NEEDS_PROOF", claim
        found: str = claim["id"]
        return found
    return gid(
        await register(db, clock, rep, customer_name=f"Customer {nth}",
                       customer_domain=f"customer{nth}.example")
    )  # fmt: skip


@pytest.fixture
async def targets(db: Database, clock: OffsetClock, tenant: Tenant) -> None:
    """Serials (SN000001-5 shipped to partner 0, SN000006-10 to partner 1) and products."""
    await seed_registry(db, clock, tenant, 10)
    async with db.transaction() as session:
        await add_products(session, clock, tenant)


@pytest.mark.parametrize("owner", OWNERS)
async def test_a_retry_under_the_key_answers_the_same_and_stores_nothing_more(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, targets: None, owner: str
) -> None:
    """Six files, sent again: without the key the owner would hold twelve (over the
    limit of ten); with it, the retry is the first answer."""
    target = await new_owner(gql, db, clock, tenant, owner)
    rep = tenant.user(Role.PARTNER_REP, 0)
    files = files_of("1", "2", "3", "4", "5") + [("photo.png", PNG, "image/png")]
    before = await state(db, gql)
    first = result(owner, await attach(gql, owner, target, files, rep, key="upload-1"))
    assert first["userErrors"] == []
    after_first = await state(db, gql)
    assert after_first["Attachment"] == 6
    assert len(stored_files(after_first)) == len(stored_files(before)) + 6
    for _ in range(2):
        again = result(owner, await attach(gql, owner, target, files, rep, key="upload-1"))
        assert again == first
        assert await state(db, gql) == after_first
    if owner == "deal":
        assert [a["filename"] for a in first["attachments"]] == [
            "1.pdf", "2.pdf", "3.pdf", "4.pdf", "5.pdf", "photo.png",
        ]  # fmt: skip
    # Without the key the same files are another upload, refused by the limit.
    plain = result(owner, await attach(gql, owner, target, files, rep))
    assert [(e["field"], e["code"]) for e in plain["userErrors"]] == [
        ("files", "TOO_MANY_ATTACHMENTS")
    ]
    assert await state(db, gql) == after_first


@pytest.mark.parametrize("owner", OWNERS)
async def test_one_file_is_the_same_request_in_file_or_in_files(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, targets: None, owner: str
) -> None:
    target = await new_owner(gql, db, clock, tenant, owner)
    rep = tenant.user(Role.PARTNER_REP, 0)
    [part] = files_of("only")
    first = await send(
        gql, QUERY[owner], {"input": {"id": target, "file": None, "idempotencyKey": "one"}},
        {"0": ["variables.input.file"]}, {"0": part}, rep,
    )  # fmt: skip
    answer = result(owner, first.json())
    assert answer["userErrors"] == []
    before = await state(db, gql)
    again = result(owner, await attach(gql, owner, target, [part], rep, key="one"))
    assert again == answer
    assert await state(db, gql) == before


@pytest.mark.parametrize("owner", OWNERS)
async def test_a_retry_after_the_owner_moved_on_still_answers_the_first_result(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, targets: None, owner: str
) -> None:
    """The first request committed, then the claim was reversed (or the registration
    withdrawn): neither takes proof any more, yet the retry is answered as it was."""
    target = await new_owner(gql, db, clock, tenant, owner)
    rep = tenant.user(Role.PARTNER_REP, 0)
    files = files_of("a", "b")
    first = result(owner, await attach(gql, owner, target, files, rep, key="before-close"))
    assert first["userErrors"] == []
    if owner == "sale":
        assert first["saleClaim"]["state"] == "AUTO_APPROVED", first
        moved = await gql.data(
            "mutation($id: ID!) { saleClaimReverse(input: {id: $id, reason: REFUNDED}) "
            "{ saleClaim { state } userErrors { code } } }",
            {"id": target}, as_user=tenant.user(Role.VENDOR_ADMIN),
        )  # fmt: skip
        assert moved["saleClaimReverse"] == {"saleClaim": {"state": "REVERSED"}, "userErrors": []}
        closed = ("claimId", "INVALID_STATE")
    else:
        moved = await gql.data(
            "mutation($id: ID!) { dealRegistrationWithdraw(input: {id: $id}) "
            "{ dealRegistration { status } userErrors { code } } }",
            {"id": target}, as_user=rep,
        )  # fmt: skip
        assert moved["dealRegistrationWithdraw"]["dealRegistration"] == {"status": "WITHDRAWN"}
        closed = ("id", "INVALID_TRANSITION")
    before = await state(db, gql)
    again = result(owner, await attach(gql, owner, target, files, rep, key="before-close"))
    assert again["userErrors"] == []
    if owner == "sale":
        assert again["saleClaim"] == {**first["saleClaim"], "state": "REVERSED"}
    else:
        assert again["attachments"] == first["attachments"]
        assert again["attachment"] == first["attachment"]
    assert await state(db, gql) == before
    # A new request (a new key, or none) meets the closed owner.
    for key in ("after-close", None):
        refused = result(owner, await attach(gql, owner, target, files, rep, key=key))
        assert [(e["field"], e["code"]) for e in refused["userErrors"]] == [closed]
    assert await state(db, gql) == before


@pytest.mark.parametrize("owner", OWNERS)
async def test_other_files_under_the_key_are_refused_and_change_nothing(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, targets: None, owner: str
) -> None:
    target = await new_owner(gql, db, clock, tenant, owner)
    rep = tenant.user(Role.PARTNER_REP, 0)
    files = files_of("a", "b")
    first = result(owner, await attach(gql, owner, target, files, rep, key="k"))
    assert first["userErrors"] == []
    # Another owner of the caller's, with the same files: another request too.
    other_target = await new_owner(gql, db, clock, tenant, owner, 0, nth=1)
    before = await state(db, gql)
    for other, on in [
        (files[::-1], target),  # the same files in another order
        (files[:1], target),  # fewer
        ([*files, *files_of("c")], target),  # more
        ([files[0], (files[1][0], pdf("b2"), "application/pdf")], target),  # other bytes
        (files, other_target),  # the same files, another owner
    ]:
        refused = result(owner, await attach(gql, owner, on, other, rep, key="k"))
        assert refused["userErrors"] == [
            {
                "field": "idempotencyKey",
                "code": "IDEMPOTENCY_KEY_REUSED",
                "message": "You used this idempotency key for a different request; use a new key.",
            }
        ]
        assert await state(db, gql) == before
    # The key as the create mutations check it: at most 128 characters; blank is no key.
    long = result(owner, await attach(gql, owner, target, files, rep, key="x" * 129))
    assert [(e["field"], e["code"]) for e in long["userErrors"]] == [("idempotencyKey", "TOO_LONG")]
    assert MAX_KEY_LENGTH == 128
    assert await state(db, gql) == before
    blank = result(owner, await attach(gql, owner, target, files_of("d"), rep, key="  "))
    assert blank["userErrors"] == []
    after = await state(db, gql)
    assert (after["Attachment"], after["IdempotencyKey"]) == (
        before["Attachment"] + 1,
        before["IdempotencyKey"],
    )
    # The first request's answer is still the key's.
    again = result(owner, await attach(gql, owner, target, files, rep, key="k"))
    if owner == "deal":
        assert again["attachments"] == first["attachments"]
    else:
        assert again["userErrors"] == []
    assert await state(db, gql) == after


@pytest.mark.parametrize("owner", OWNERS)
async def test_a_key_belongs_to_its_caller(
    gql: GQL,
    db: Database,
    clock: OffsetClock,
    tenant: Tenant,
    other_tenant: Tenant,
    targets: None,
    owner: str,
) -> None:
    """Another partner's user, a colleague on the same owner, another vendor's user: the
    same key string is each one's own key (its own upload, its own retry), never an answer
    with the first caller's files."""
    await seed_registry(db, clock, other_tenant, 10)
    async with db.transaction() as session:
        await add_products(session, clock, other_tenant)
    mine = await new_owner(gql, db, clock, tenant, owner, 0)
    theirs = await new_owner(gql, db, clock, tenant, owner, 1)
    elsewhere = await new_owner(gql, db, clock, other_tenant, owner, 0)
    files = files_of("shared")
    rep = tenant.user(Role.PARTNER_REP, 0)
    first = result(owner, await attach(gql, owner, mine, files, rep, key="shared-key"))
    assert first["userErrors"] == []
    seen = {a["downloadUrl"] for a in _attachments(owner, first)}
    for user, on in [
        (tenant.user(Role.PARTNER_REP, 1), theirs),  # another partner's rep, its own owner
        (tenant.user(Role.PARTNER_ADMIN, 0), mine),  # a colleague, the same owner
        (other_tenant.user(Role.PARTNER_REP, 0), elsewhere),  # another vendor's rep
    ]:
        answer = result(owner, await attach(gql, owner, on, files, user, key="shared-key"))
        assert answer["userErrors"] == [], (user.email, answer)
        new = {a["downloadUrl"] for a in _attachments(owner, answer)} - seen
        assert len(new) == 1, (user.email, answer)
        seen |= new
        before = await state(db, gql)
        assert result(owner, await attach(gql, owner, on, files, user, key="shared-key")) == answer
        assert await state(db, gql) == before
    # The first caller's retry still answers its own upload only.
    again = result(owner, await attach(gql, owner, mine, files, rep, key="shared-key"))
    if owner == "deal":
        assert again["attachments"] == first["attachments"]
    else:
        assert len(again["saleClaim"]["attachments"]) == 2  # its own and the colleague's


def _attachments(owner: str, answer: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = (
        answer["attachments"] if owner == "deal" else answer["saleClaim"]["attachments"]
    )
    return found


@pytest.mark.parametrize("owner", OWNERS)
async def test_refused_callers_with_the_key_change_nothing(
    gql: GQL,
    db: Database,
    clock: OffsetClock,
    tenant: Tenant,
    other_tenant: Tenant,
    targets: None,
    owner: str,
) -> None:
    """Anonymous, a role that may never attach, another partner's and another vendor's
    users sending the first caller's very request (key and files): refused as before (a
    record they may not see is NOT_FOUND), no key taken, no row, no file."""
    target = await new_owner(gql, db, clock, tenant, owner)
    files = files_of("a", "b")
    first = result(
        owner, await attach(gql, owner, target, files, tenant.user(Role.PARTNER_REP, 0), key="k")
    )
    assert first["userErrors"] == []
    before = await state(db, gql)
    anonymous = await attach(gql, owner, target, files, None, key="k")
    assert error_codes(anonymous) == ["UNAUTHENTICATED"]
    finance = await attach(gql, owner, target, files, tenant.user(Role.FINANCE), key="k")
    assert error_codes(finance) == ["FORBIDDEN"]
    for stranger in (
        tenant.user(Role.PARTNER_REP, 1),
        tenant.user(Role.PARTNER_ADMIN, 1),
        other_tenant.user(Role.VENDOR_ADMIN),
        other_tenant.user(Role.PARTNER_ADMIN, 0),
    ):
        answer = result(owner, await attach(gql, owner, target, files, stranger, key="k"))
        assert [e["code"] for e in answer["userErrors"]] == ["NOT_FOUND"], stranger.email
        assert "a.pdf" not in str(answer)
    assert await state(db, gql) == before


@pytest.mark.parametrize("owner", OWNERS)
async def test_concurrent_retries_store_the_files_once(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, targets: None, owner: str
) -> None:
    target = await new_owner(gql, db, clock, tenant, owner)
    rep = tenant.user(Role.PARTNER_REP, 0)
    files = files_of("a", "b")
    before = await state(db, gql)
    answers = await asyncio.gather(
        *(attach(gql, owner, target, files, rep, key="racing") for _ in range(4))
    )
    results = [result(owner, a) for a in answers]
    assert all(r == results[0] for r in results), results
    after = await state(db, gql)
    assert after["Attachment"] == before["Attachment"] + 2
    assert after["IdempotencyKey"] == before["IdempotencyKey"] + 1
    assert len(stored_files(after)) == len(stored_files(before)) + 2
