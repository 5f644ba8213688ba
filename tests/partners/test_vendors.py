"""The operator's `channelboard vendors` commands, run as real processes on the test run's
database and Redis: create (with its first admin), list, suspend and reactivate - a suspended
vendor's users and API keys are refused with VENDOR_SUSPENDED over HTTP and its open
websockets close - and bad input exits non-zero, writing nothing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlmodel import col, select
from starlette.applications import Starlette

from api.settings import Settings
from infra.audit import AuditEntry
from infra.clock import OffsetClock
from infra.db import Database
from partners.invitations import Identity, accept_invitation, token_hash
from partners.models import Invitation, User, Vendor, VendorStatus
from partners.roles import Role
from tests.factories import Tenant
from tests.processes import cli_process
from tests.support import (
    GQL,
    answers,
    close_frame,
    count_rows,
    live_server,
    make_token,
    ws_client,
)

pytestmark = pytest.mark.slow

ME = "{ me { role vendor { slug } } }"


async def channelboard(settings: Settings, *args: str) -> tuple[int, str]:
    """Run ``channelboard ARGS`` to its end: (exit code, output)."""
    async with cli_process(settings, *args) as process:
        out, _ = await process.communicate()
        assert process.returncode is not None
        return process.returncode, out.decode()


@pytest.fixture
async def server(app: Starlette) -> AsyncIterator[str]:
    async with live_server(app) as address:
        yield address


async def reason(gql: GQL, token: str) -> str | None:
    payload = await gql(ME, token=token)
    if "errors" not in payload:
        return None
    found: str = payload["errors"][0]["extensions"]["reason"]
    return found


async def test_create_makes_a_vendor_and_invites_its_first_admin(
    settings: Settings, gql: GQL, db: Database, clock: OffsetClock
) -> None:
    slug = f"initech-{uuid.uuid4().hex[:6]}"
    email = f"boss@{slug}.example"
    code, out = await channelboard(
        settings, "vendors", "create", "--name", "Initech", "--slug", slug, "--admin-email", email
    )
    assert code == 0, out
    invitation_token = out.strip().splitlines()[-1]
    async with db.session() as session:
        vendor = (await session.exec(select(Vendor).where(Vendor.slug == slug))).one()
        invitation = (
            await session.exec(select(Invitation).where(Invitation.vendor_id == vendor.id))
        ).one()
        entries = (await session.exec(select(AuditEntry).where(
            AuditEntry.vendor_id == vendor.id, AuditEntry.action == "vendor.created"
        ))).all()  # fmt: skip
    assert (invitation.email, invitation.role) == (email, Role.VENDOR_ADMIN)
    assert invitation.token_hash == token_hash(invitation_token)
    assert invitation.invited_by.startswith("operator:")
    assert [e.after for e in entries] == [{"name": "Initech", "slug": slug}]
    # The admin signs in with its identity provider and accepts; then it is the admin.
    subject = f"idp|{uuid.uuid4().hex}"
    identity = Identity(subject=subject, email=email, email_verified=True)
    async with db.transaction() as session:
        await accept_invitation(session, identity, clock, token=invitation_token)
    data = await gql(ME, token=make_token(None, sub=subject))
    assert data == {"data": {"me": {"role": "VENDOR_ADMIN", "vendor": {"slug": slug}}}}

    code, out = await channelboard(settings, "vendors", "list")
    assert code == 0, out
    [line] = [row for row in out.splitlines() if slug in row]
    assert [cell.strip() for cell in line.split("│")[1:6]] == [slug, "Initech", "ACTIVE", "1", "0"]

    code, out = await channelboard(settings, "vendors", "suspend", slug, "--reason", "trial over")
    assert code == 0, out
    async with db.session() as session:
        actions = (await session.exec(
            select(AuditEntry.action, AuditEntry.reason, AuditEntry.after)
            .where(AuditEntry.vendor_id == vendor.id).order_by(col(AuditEntry.id))
        )).all()  # fmt: skip
    assert [tuple(a) for a in actions][-1] == (
        "vendor.suspended",
        "trial over",
        {"status": "SUSPENDED"},
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--name", "X", "--slug", "Not A Slug", "--admin-email", "a@x.example"], "INVALID_SLUG"),
        (["--name", "X", "--slug", "-dash", "--admin-email", "a@x.example"], "INVALID_SLUG"),
        (["--name", " ", "--slug", "blank-name", "--admin-email", "a@x.example"], "INVALID_NAME"),
        (["--name", "X", "--slug", "bad-email", "--admin-email", "nobody"], "INVALID_EMAIL"),
    ],
)
async def test_create_refuses_bad_input_and_writes_nothing(
    settings: Settings, db: Database, args: list[str], expected: str
) -> None:
    before = (await count_rows(db, Vendor), await count_rows(db, User))
    code, out = await channelboard(settings, "vendors", "create", *args)
    assert code == 1
    assert expected in out
    assert (await count_rows(db, Vendor), await count_rows(db, User)) == before


async def test_create_refuses_a_taken_slug_or_email(
    settings: Settings, db: Database, tenant: Tenant
) -> None:
    before = (await count_rows(db, Vendor), await count_rows(db, User))
    taken_slug = [
        "--name", "Copy", "--slug", tenant.vendor.slug, "--admin-email", "new@copy.example"
    ]  # fmt: skip
    code, out = await channelboard(settings, "vendors", "create", *taken_slug)
    assert (code, "DUPLICATE_SLUG" in out) == (1, True), out
    taken_email = [
        "--name", "Copy", "--slug", f"copy-{uuid.uuid4().hex[:6]}",
        "--admin-email", tenant.user(Role.VENDOR_ADMIN).email.upper(),
    ]  # fmt: skip
    code, out = await channelboard(settings, "vendors", "create", *taken_email)
    assert (code, "DUPLICATE_EMAIL" in out) == (1, True), out
    assert (await count_rows(db, Vendor), await count_rows(db, User)) == before


async def test_unknown_slugs_and_repeated_transitions_exit_non_zero(
    settings: Settings, db: Database, tenant: Tenant
) -> None:
    code, out = await channelboard(
        settings, "vendors", "suspend", "no-such-vendor", "--reason", "x"
    )
    assert (code, "NOT_FOUND" in out) == (1, True), out
    code, out = await channelboard(settings, "vendors", "reactivate", tenant.vendor.slug)
    assert (code, "NOT_SUSPENDED" in out) == (1, True), out
    code, out = await channelboard(
        settings, "vendors", "suspend", tenant.vendor.slug, "--reason", " "
    )
    assert (code, "REASON_REQUIRED" in out) == (1, True), out
    async with db.session() as session:
        vendor = (await session.exec(select(Vendor).where(Vendor.id == tenant.vendor.id))).one()
    assert vendor.status is VendorStatus.ACTIVE


async def test_a_suspended_vendors_users_keys_and_sockets_are_refused_until_reactivated(
    settings: Settings, server: str, gql: GQL, tenant: Tenant, other_tenant: Tenant
) -> None:
    admin, rep = tenant.user(Role.VENDOR_ADMIN), tenant.user(Role.PARTNER_REP)
    created = await gql.data(
        'mutation { apiKeyCreate(input: {name: "erp", role: VENDOR_ADMIN}) { secret } }',
        as_user=admin,
    )
    key = created["apiKeyCreate"]["secret"]
    admin_token, rep_token = gql.token(admin), gql.token(rep)
    outsider = gql.token(other_tenant.user(Role.VENDOR_ADMIN))
    for token in (admin_token, rep_token, key, outsider):
        assert await reason(gql, token) is None
    async with (
        ws_client(server, rep_token) as doomed,
        ws_client(server, key) as doomed_key,
        ws_client(server, outsider) as other,
    ):
        code, out = await channelboard(
            settings, "vendors", "suspend", tenant.vendor.slug, "--reason", "unpaid invoices"
        )
        assert code == 0, out
        # The command ran in another process: this server heard of it over Redis.
        assert await close_frame(doomed.ws) == (4403, "VENDOR_SUSPENDED")
        assert await close_frame(doomed_key.ws) == (4403, "VENDOR_SUSPENDED")
        assert await answers(other)
    for token in (admin_token, rep_token, key):
        assert await reason(gql, token) == "VENDOR_SUSPENDED"
    assert await reason(gql, outsider) is None
    code, out = await channelboard(settings, "vendors", "list")
    [line] = [row for row in out.splitlines() if tenant.vendor.slug in row]
    assert "SUSPENDED" in line

    code, out = await channelboard(settings, "vendors", "reactivate", tenant.vendor.slug)
    assert code == 0, out
    for token in (admin_token, rep_token, key):
        assert await reason(gql, token) is None
