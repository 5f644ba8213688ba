"""The one access predicate (partners.access) that every readable_* statement composes."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlmodel import select

from deal_registration.attachment_access import readable_attachments
from deal_registration.registrations.repository import readable_registrations
from deal_registration.sales.repository import readable_claims
from earnings.repository import readable_entries, readable_statements
from infra.db import Database
from partners.access import accessible_partner_ids
from partners.models import Partner
from partners.repository import readable_partners
from partners.roles import Principal, Role
from tests.factories import Tenant

# A partner rep that names no user (no user is bound to it) owns no row.
REP_WITHOUT_USER = Principal(vendor_id=uuid.uuid4(), role=Role.PARTNER_REP, partner_id=uuid.uuid4())
OWNED: list[Callable[[Principal], Any]] = [
    readable_claims,  # the copy that lacked the guard: it read "rep_user_id IS NULL"
    readable_registrations,
    readable_entries,
    readable_statements,
    readable_attachments,
]


@pytest.mark.parametrize("readable", OWNED, ids=lambda f: f.__name__)
def test_a_rep_without_a_user_reads_no_owned_row(readable: Callable[[Principal], Any]) -> None:
    sql = str(readable(REP_WITHOUT_USER).compile(compile_kwargs={"literal_binds": True}))
    assert "IS NULL" not in sql
    assert "false" in sql.lower()


@pytest.mark.parametrize(
    ("role", "visible"),
    [
        (Role.VENDOR_ADMIN, {0, 1}),
        (Role.FINANCE, {0, 1}),
        (Role.CHANNEL_MANAGER, {0}),
        (Role.PARTNER_ADMIN, {0}),
        (Role.PARTNER_REP, {0}),
    ],
)
async def test_accessible_partner_ids_is_readable_partners(
    db: Database, tenant: Tenant, other_tenant: Tenant, role: Role, visible: set[int]
) -> None:
    principal = tenant.principal(role)
    async with db.session() as session:
        ids = set(await session.exec(accessible_partner_ids(principal)))
        partners = {p.id for p in await session.exec(readable_partners(principal))}
        everyone = set(await session.exec(select(Partner.id)))
    assert ids == partners == {tenant.partners[i].id for i in visible}
    assert ids < everyone
