"""The cleanup after each test (``tests.support.wipe``) against the app's background writers,
which it does not stop: on PostgreSQL a writer that commits while the cleanup deletes must
neither fail it nor leave a row behind."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from infra.clock import OffsetClock
from infra.db import Database
from partners.models import Partner
from schema.context import Services
from signals.maintenance import take_due
from signals.models import SignalSnapshot
from tests.factories import Tenant
from tests.support import count_rows, pg_value, wipe


async def waits_for(db: Database, pid: int) -> bool:
    """Whether a session is waiting for a lock the backend ``pid`` holds (asked on a
    connection of its own: pg_stat_activity is a snapshot per transaction)."""
    blocked = await pg_value(
        db.url, "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))", pid
    )
    return bool(blocked)


async def test_a_snapshot_committed_while_the_cleanup_deletes_is_deleted_too(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    """The daily rule run takes the partners' snapshots of the day (``take_due``) in a
    clock job, which goes on while the cleanup runs. Its transaction has inserted them when
    the cleanup starts, and commits once the cleanup waits for it: the cleanup, which had
    deleted the snapshots before and then failed to delete the partners on the foreign key,
    deletes them as well."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL: on SQLite the writer holds the write lock, the cleanup waits")
    async with db.transaction() as job:
        assert await take_due(job, clock, tenant.vendor.id) == len(tenant.partners)
        pid = (await job.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        cleanup = asyncio.create_task(wipe(services))
        async with asyncio.timeout(10):
            while not await waits_for(db, pid):
                assert not cleanup.done(), cleanup
                await asyncio.sleep(0.01)
    await asyncio.wait_for(cleanup, 30)
    assert (await count_rows(db, SignalSnapshot), await count_rows(db, Partner)) == (0, 0)
