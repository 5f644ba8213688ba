"""A PostgreSQL server of the test's own, stopped and started under a pool: while it
shuts down or starts up it refuses connections with SQLSTATE 57P03 ("the database system
is shutting down" / "... is starting up"), which is an outage (SERVICE_UNAVAILABLE, the
dispatcher's pass uncharged), not a bug; once it is back the same pool answers. Skipped
where no PostgreSQL server binaries are installed (``tests.private_postgres``)."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest
from graphql import GraphQLError
from sqlalchemy import text

from api import migrations
from infra.clock import SystemClock
from infra.db import Database
from infra.outages import is_unavailable
from infra.outbox import Dispatcher, OutboxEvent, is_transient, record_event
from schema.extensions import MaskUnexpectedErrors
from tests.factories import create_tenant
from tests.private_postgres import PrivatePostgres
from tests.support import eventually

pytestmark = pytest.mark.slow


async def _select_one(db: Database) -> int:
    async with db.session() as session:
        return int((await session.execute(text("SELECT 1"))).scalar_one())


async def test_a_server_shutting_down_or_starting_is_an_outage_then_the_pool_recovers(
    private_postgres: PrivatePostgres,
) -> None:
    holder = Database(private_postgres.url)
    db = Database(private_postgres.url)
    try:
        assert await _select_one(db) == 1
        await db.dispose()  # new connections from here on
        async with holder.session() as session:
            await session.execute(text("SELECT 1"))  # a session the smart stop waits for
            private_postgres.pg_ctl("-m", "smart", "-W", "stop")
            error: BaseException | None = None
            try:
                await _select_one(db)
            except Exception as exc:  # noqa: BLE001 - what it raises is what is classified
                error = exc
            assert error is not None, "the server took a new connection while shutting down"
            assert "shutting down" in str(error)
            # Before, a plain DBAPIError: masked as INTERNAL_SERVER_ERROR with a traceback,
            # and charged to the dispatcher's events.
            assert is_unavailable(error)
            assert is_transient(error)
            answered = MaskUnexpectedErrors().anonymise_error(
                GraphQLError("x", original_error=error)
            )
            assert answered.extensions == {"code": "SERVICE_UNAVAILABLE", "retryAfterSeconds": 2}
        await holder.dispose()  # the last session gone: the server stops
        private_postgres.stopped()  # wait for it (the smart stop may have ended it already)
        private_postgres.pg_ctl("-w", "-t", "60", "start")
        assert await _select_one(db) == 1  # the same pool, once the server is back
    finally:
        await holder.dispose()
        await db.dispose()


async def test_the_dispatcher_waits_out_a_restart_saying_so_once_each_way(
    private_postgres: PrivatePostgres, caplog: pytest.LogCaptureFixture
) -> None:
    """The dispatcher's loop (as ``channelboard dispatch`` runs it) polls through a stop
    and start of its PostgreSQL: every pass meets the outage; the log has one line when it
    goes and one when it is back, not a traceback a poll (as before), and what commits
    after is dispatched."""
    await migrations.upgrade(private_postgres.url)
    db = Database(private_postgres.url)
    clock = SystemClock()
    handled: list[str] = []

    async def handler(event: OutboxEvent) -> None:
        handled.append(event.payload["name"])

    dispatcher = Dispatcher(db, clock)
    dispatcher.register("Probe", handler)
    running = asyncio.create_task(dispatcher.run(poll_interval=0.05))
    try:
        async with db.transaction() as session:
            tenant = await create_tenant(session, clock)

        async def commit(name: str) -> bool:
            async with db.transaction() as session:
                await record_event(
                    session, clock, vendor_id=tenant.vendor.id, type="Probe",
                    aggregate_id=uuid.uuid4(), payload={"name": name},
                )  # fmt: skip
            dispatcher.notify()
            return True

        async def dispatched(name: str) -> bool:
            return name in handled

        await commit("before")
        await eventually(lambda: dispatched("before"), within=15)
        caplog.clear()
        await asyncio.to_thread(private_postgres.pg_ctl, "-m", "fast", "-w", "stop")

        async def told() -> bool:
            return any("out of reach" in r.getMessage() for r in caplog.records)

        await eventually(told, within=15)
        await asyncio.sleep(0.5)  # (more polls meet the outage: none may log again)
        await asyncio.to_thread(private_postgres.pg_ctl, "-w", "-t", "60", "start")

        async def committed() -> bool:
            try:
                return await commit("after")
            except Exception as exc:  # noqa: BLE001 - a pooled connection the restart ended
                if not is_unavailable(exc):
                    raise
                return False

        await eventually(committed, within=30)
        await eventually(lambda: dispatched("after"), within=30)

        def lines_now() -> list[logging.LogRecord]:
            return [r for r in caplog.records if r.name == "infra.outbox"]

        async def both_said() -> bool:
            return len(lines_now()) >= 2

        # The handler runs inside the pass, which says "back" once it returns: the test
        # could look between the two (a loaded CI run saw only the first line).
        await eventually(both_said, within=10)
        lines = lines_now()
        assert [r.levelname for r in lines] == ["WARNING", "WARNING"], [
            r.getMessage() for r in lines
        ]
        assert "the database is out of reach" in lines[0].getMessage()
        assert "the database is back after" in lines[1].getMessage()
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await db.dispose()
