"""`channelboard vendors create` SIGKILLed just after its commit, before it printed the
first admin's one-time invitation token (only its hash is stored), then run again with the
same arguments. Before, the rerun was refused (DUPLICATE_SLUG) and the token was lost for
good: no command or operation could give the vendor's first admin another, and the vendor
could be neither entered nor made again. Now the rerun finishes the job: the same vendor and
invitation (none made twice), a new token (the lost one stops working), recorded; and once
the admin has accepted, or for other arguments, the slug is still refused."""

from __future__ import annotations

import uuid

import pytest
from sqlmodel import col, select

from api.settings import Settings
from infra.audit import AuditEntry
from infra.clock import OffsetClock
from infra.db import Database
from partners.invitations import Identity, accept_invitation, token_hash
from partners.models import Invitation, InvitationStatus, User, Vendor
from tests.partners.test_vendors import channelboard
from tests.processes import KILLED, cli_killed_at
from tests.support import count_rows

pytestmark = pytest.mark.slow


async def _state(db: Database, slug: str) -> tuple[list[Vendor], list[Invitation], list[str]]:
    async with db.session() as session:
        vendors = list(await session.exec(select(Vendor).where(Vendor.slug == slug)))
        ids = [v.id for v in vendors]
        found = list(
            await session.exec(select(Invitation).where(col(Invitation.vendor_id).in_(ids)))
        )
        actions = list(
            await session.exec(
                select(AuditEntry.action)
                .where(col(AuditEntry.vendor_id).in_(ids))
                .order_by(col(AuditEntry.id))
            )
        )
    return vendors, found, actions


async def test_a_vendor_create_killed_before_its_token_was_shown_is_finished_by_a_rerun(
    settings: Settings, db: Database, clock: OffsetClock
) -> None:
    slug = f"initech-{uuid.uuid4().hex[:6]}"
    email = f"boss@{slug}.example"
    args = ("vendors", "create", "--name", "Initech", "--slug", slug, "--admin-email", email)
    users = await count_rows(db, User)

    code, out = await cli_killed_at(settings, "commit", 1, *args)
    assert code == KILLED, out
    assert "cbi_" not in out  # the token was never shown
    [vendor], [lost], actions = await _state(db, slug)
    assert actions == ["vendor.created", "invitation.created"]

    # Other arguments are another vendor: refused, nothing changed.
    for other in (
        ("--name", "Initech Two", "--slug", slug, "--admin-email", email),
        ("--name", "Initech", "--slug", slug, "--admin-email", f"other@{slug}.example"),
    ):
        code, out = await channelboard(settings, "vendors", "create", *other)
        assert (code, "DUPLICATE_SLUG" in out) == (1, True), out
    assert await _state(db, slug) == ([vendor], [lost], actions)

    code, out = await channelboard(settings, *args)
    assert code == 0, out
    assert "already" in out  # says that it made nothing new
    token = out.strip().splitlines()[-1]
    [again], [invitation], actions = await _state(db, slug)
    assert (again.id, invitation.id) == (vendor.id, lost.id)  # none twice
    assert invitation.token_hash == token_hash(token) != lost.token_hash
    assert invitation.status is InvitationStatus.PENDING
    assert actions == ["vendor.created", "invitation.created", "invitation.resent"]
    assert await count_rows(db, User) == users

    # The admin accepts with the new token: the vendor is as an uninterrupted run leaves it.
    subject = f"idp|{uuid.uuid4().hex}"
    identity = Identity(subject=subject, email=email, email_verified=True)
    async with db.transaction() as session:
        await accept_invitation(session, identity, clock, token=token)
    code, out = await channelboard(settings, *args)
    assert (code, "DUPLICATE_SLUG" in out) == (1, True), out
    [_], [accepted], _ = await _state(db, slug)
    assert accepted.status is InvitationStatus.ACCEPTED
