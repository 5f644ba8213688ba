"""An app that stops while one of its clock jobs is in the middle of a transaction (a
second app on the same database, dispatching inline: its jobs run until it stops) leaves
no transaction behind: the next writer gets SQLite's write lock at once, not 'database is
locked' after the busy timeout."""

from __future__ import annotations

import asyncio
import gc
from datetime import timedelta

import pytest

from api.app import create_app
from api.settings import Settings
from infra.clock import OffsetClock
from infra.db import Database, is_sqlite
from partners.service import create_vendor
from schema.context import Services
from tests.factories import Tenant, create_contest, dispatch
from tests.support import HeldStatement, eventually


async def test_an_app_stopped_mid_transaction_leaves_no_write_lock(
    settings: Settings, clock: OffsetClock, services: Services, db: Database, tenant: Tenant
) -> None:
    if not is_sqlite(settings.database_url):
        pytest.skip("holds a statement with SQLite's trace callback (PostgreSQL: tests/infra)")
    now = clock.now()
    await create_contest(
        db, clock, tenant, starts_at=now - timedelta(hours=2), ends_at=now + timedelta(hours=1)
    )
    await dispatch(services)  # the session's app handles the contest's events
    # The second app's clock is two hours on: only its contest closer sees the contest
    # ended, and closes it in transactions, one of whose reads of the contest is held
    # mid-statement until the app has begun to stop (its jobs cancelled).
    app = create_app(
        settings.with_overrides(dispatch="inline"), clock=OffsetClock(timedelta(hours=2))
    )
    # With the collector off, as it may stay for long: a cut-off query's cursor then lives
    # on (in its traceback's reference cycle), and so would a connection closed under it.
    gc.disable()
    try:
        async with app.router.lifespan_context(app):
            second: Services = app.state.services
            held = HeldStatement(second.db.engine, r"\bFROM contest\b", writers_only=True)
            await held.entered()

            async def stopping() -> bool:
                return any(
                    task.get_name() == "contest-closer" and task.cancelling()
                    for task in asyncio.all_tasks()
                )

            async def release_once_stopping() -> None:
                try:
                    await eventually(stopping, within=60)
                finally:
                    held.release()

            releasing = asyncio.create_task(release_once_stopping())
        await releasing  # (the app has stopped)
        async with db.transaction() as session:  # SQLite: BEGIN IMMEDIATE
            await create_vendor(session, clock, name="Next writer", slug="next-writer")
    finally:
        gc.enable()
