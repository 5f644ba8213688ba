"""A process stopped or hung in the middle of a transaction, holding a lock a mutation
needs (here a partner's row: any row or advisory lock behaves alike), does not hold up
the API for ever: on PostgreSQL its session is ended after
CHANNELBOARD_DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS and the mutation goes through; on
SQLite, which cannot end another process's transaction, the writer is answered
SERVICE_UNAVAILABLE with a retry hint after the busy timeout, not INTERNAL_SERVER_ERROR.
Either way nothing the stopped process wrote stays. Real processes: the holder, stopped
with SIGSTOP, and a server. Before: on PostgreSQL the mutation waited for ever; on SQLite
it waited 30 s and was answered INTERNAL_SERVER_ERROR."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from api.settings import Settings
from infra.db import Database
from partners.models import Partner
from partners.roles import Role
from tests.factories import Tenant, gid
from tests.processes import api_process, python_process
from tests.support import make_token

pytestmark = pytest.mark.slow

# Through the app's Database and settings: a writer's transaction that renames the partner
# (its row locked until the transaction ends), then waits with the transaction open.
HOLDER = """
import asyncio, sys, uuid
from api.settings import Settings
from infra.db import Database
from partners.models import Partner

async def main() -> None:
    settings = Settings.from_env()
    db = Database(settings.database_url, waits=settings.database_waits)
    async with db.transaction() as session:
        partner = await session.get(Partner, uuid.UUID(sys.argv[1]))
        partner.name = partner.legal_name = "held by a stuck process"
        session.add(partner)
        await session.flush()
        print("holding", flush=True)
        await asyncio.sleep(3600)

asyncio.run(main())
"""

RENAME = """mutation($input: PartnerUpdateInput!) {
  partnerUpdate(input: $input) { partner { name } userErrors { code } } }"""

# A bound for a broken build (the mutation waited for ever), not a measurement.
AT_MOST = 60.0


async def _rename(address: str, tenant: Tenant, name: str) -> dict[str, Any]:
    partner = tenant.partners[0]
    async with httpx.AsyncClient(timeout=AT_MOST) as client:
        response = await client.post(
            f"http://{address}/graphql",
            json={"query": RENAME, "variables": {"input": {"id": gid(partner), "name": name}}},
            headers={"authorization": f"Bearer {make_token(tenant.user(Role.VENDOR_ADMIN))}"},
        )
    assert response.status_code == 200, response.text
    payload: dict[str, Any] = response.json()
    return payload


async def _names(db: Database, tenant: Tenant) -> tuple[str, str]:
    """The partner's name and legal name (the holder wrote both, the mutation the first)."""
    async with db.session() as session:
        partner = await session.get(Partner, tenant.partners[0].id)
    assert partner is not None
    return partner.name, partner.legal_name


async def _held(process: asyncio.subprocess.Process) -> None:
    """Once the holder has its lock (its line), stopped mid-transaction."""
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), AT_MOST)
    assert line.strip() == b"holding", line
    os.killpg(process.pid, signal.SIGSTOP)


async def test_the_apps_connections_carry_the_idle_timeout(db: Database) -> None:
    """The app's own Database (built from the settings: the default, 300 s)."""
    if not db.url.startswith("postgresql"):
        pytest.skip("a PostgreSQL setting")
    async with db.session() as session:
        shown = await session.scalar(text("SHOW idle_in_transaction_session_timeout"))
    assert shown == "5min"


async def test_a_stopped_process_mid_transaction_is_ended_and_the_mutation_goes_through(
    settings: Settings, db: Database, tenant: Tenant
) -> None:
    if not db.url.startswith("postgresql"):
        pytest.skip("PostgreSQL ends an idle transaction's session; SQLite: the next test")
    _, legal_name = await _names(db, tenant)
    partner = str(tenant.partners[0].id)
    async with (
        api_process(settings) as address,
        python_process(
            settings, HOLDER, partner, DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS="2"
        ) as holder,
    ):
        await _held(holder)
        payload = await _rename(address, tenant, "Renamed past the stuck one")
        renamed = {"partner": {"name": "Renamed past the stuck one"}, "userErrors": []}
        assert payload == {"data": {"partnerUpdate": renamed}}
        assert holder.returncode is None  # still stopped: the server ended its session
    assert await _names(db, tenant) == ("Renamed past the stuck one", legal_name)


async def test_on_sqlite_a_writer_behind_a_stopped_one_is_told_to_retry(
    settings: Settings, db: Database, tenant: Tenant
) -> None:
    if db.url.startswith("postgresql"):
        pytest.skip("SQLite's busy timeout; PostgreSQL: the test above")
    before = await _names(db, tenant)
    partner = str(tenant.partners[0].id)
    async with api_process(settings, SQLITE_BUSY_TIMEOUT_SECONDS="1") as address:
        async with python_process(settings, HOLDER, partner) as holder:
            await _held(holder)
            payload = await _rename(address, tenant, "Renamed past the stuck one")
            [error] = payload["errors"]
            assert error["extensions"]["code"] == "SERVICE_UNAVAILABLE", payload
            assert error["extensions"]["retryAfterSeconds"] > 0
        # The holder is killed: its transaction is gone, and the retry goes through.
        assert await _names(db, tenant) == before
        payload = await _rename(address, tenant, "Renamed past the stuck one")
        assert payload["data"]["partnerUpdate"]["userErrors"] == [], payload
    assert await _names(db, tenant) == ("Renamed past the stuck one", before[1])
