"""A mutation whose transaction PostgreSQL rolls back to break a deadlock is run again by
the mutation runner (schema.mutations.run): the client gets its answer, not an error, and
both transactions' writes stay. Two real transactions on the real database: the test's
holds the vendor's row (which the mutation's audit entry refers to) and then asks for the
partner's row, which the mutation updated first. Before, the client was answered
INTERNAL_SERVER_ERROR and a traceback was logged, for a transaction it only had to send
again."""

from __future__ import annotations

import asyncio
import logging

import pytest
from sqlalchemy import text, update
from sqlmodel import select

from infra.db import Database
from partners.models import Partner, Vendor
from partners.roles import Role
from tests.factories import Tenant, blocked_on_a_lock, gid
from tests.support import GQL

RENAME = """mutation($input: PartnerUpdateInput!) {
  partnerUpdate(input: $input) { partner { name } userErrors { code } } }"""


async def test_a_mutation_rolled_back_to_break_a_deadlock_is_run_again(
    gql: GQL, db: Database, tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    if not db.url.startswith("postgresql"):
        pytest.skip("PostgreSQL's deadlock detection (SQLite writers take turns)")
    caplog.set_level(logging.INFO, logger="channelboard.graphql")
    partner = tenant.partners[0]
    variables = {"input": {"id": gid(partner), "name": "Renamed through a deadlock"}}
    async with db.transaction() as other:
        # This side waits long before it looks for a deadlock: the mutation's side finds it
        # (after PostgreSQL's default second) and is the one rolled back.
        await other.execute(text("SET LOCAL deadlock_timeout = '60s'"))
        await other.execute(
            select(Vendor.id).where(Vendor.id == tenant.vendor.id).with_for_update()
        )
        renaming = asyncio.create_task(
            gql(RENAME, variables, as_user=tenant.user(Role.VENDOR_ADMIN))
        )
        await blocked_on_a_lock(other, renaming)  # its audit entry waits for the vendor's row
        assert not renaming.done()
        await other.execute(
            update(Partner).where(Partner.id == partner.id).values(legal_name="Set meanwhile")
        )
    payload = await renaming
    assert payload == {
        "data": {
            "partnerUpdate": {"partner": {"name": "Renamed through a deadlock"}, "userErrors": []}
        }
    }
    async with db.session() as session:
        stored = await session.get(Partner, partner.id)
    assert stored is not None
    assert (stored.name, stored.legal_name) == ("Renamed through a deadlock", "Set meanwhile")
    runs_again = [r for r in caplog.records if "run again" in r.getMessage()]
    assert len(runs_again) == 1
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
